package reference

import "strings"

// ProbeRule is a rule file holding one shadow rule, probe-windows, that
// matches every event and reads every window feature named, so that every
// decision that runs the rules records the value of each. Tests that
// compare two ways of deciding the same stream add it to the reference
// pack (as zz_probe.yaml, after the others) and compare every feature.
func ProbeRule(windowNames []string) []byte {
	return []byte("- id: probe-windows\n" +
		"  description: Reads every window feature so decisions record them all.\n" +
		"  when: event.type != \"\" || f." + strings.Join(windowNames, " + f.") + " > 0\n" +
		"  mode: shadow\n" +
		"  action: alert\n")
}
