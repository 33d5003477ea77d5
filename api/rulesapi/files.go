package rulesapi

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
)

// nameRE is what a rule file's or list's base name may be: no dots (so no
// "..", no hidden files), no separators.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// checkFileName accepts NAME.yaml, NAME.yml, settings.yaml and
// lists/NAME.txt, nothing else: no other directories, no "..", no
// absolute paths, no backslashes.
func checkFileName(name string) error {
	dir, base := path.Split(name)
	ext := path.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	ok := nameRE.MatchString(stem) && !strings.Contains(name, `\`)
	switch dir {
	case "":
		ok = ok && (ext == ".yaml" || ext == ".yml")
	case "lists/":
		ok = ok && ext == ".txt"
	default:
		ok = false
	}
	if !ok {
		return fmt.Errorf("file name %q: want NAME.yaml, NAME.yml, settings.yaml or lists/NAME.txt (NAME: letters, digits, _ and -)", name)
	}
	return nil
}

// checkListName accepts a list name as used in in_list("NAME", ...).
func checkListName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("list name %q: want letters, digits, _ and - (at most 64, not starting with _ or -)", name)
	}
	return nil
}

func listFile(name string) string { return "lists/" + name + ".txt" }

// checkEntry accepts one list value: a line of a list file.
func checkEntry(e string) error {
	switch {
	case e == "" || strings.TrimSpace(e) != e:
		return fmt.Errorf("list entry %q: empty or with leading or trailing spaces", e)
	case strings.ContainsAny(e, "\r\n#"):
		return fmt.Errorf("list entry %q: must not contain a line break or #", e)
	case len(e) > 512:
		return fmt.Errorf("list entry %.20q...: longer than 512 bytes", e)
	}
	return nil
}

// listEntries reads a list file the way rules does: one value a line,
// # starts a comment, blanks ignored.
func listEntries(b []byte) []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line != "" && !seen[line] {
			seen[line] = true
			out = append(out, line)
		}
	}
	sort.Strings(out)
	return out
}

// withoutEntry drops the lines holding entry, keeping comments and order.
func withoutEntry(b []byte, entry string) ([]byte, bool) {
	lines := strings.Split(string(b), "\n")
	kept := lines[:0]
	found := false
	for _, line := range lines {
		v := line
		if i := strings.IndexByte(v, '#'); i >= 0 {
			v = v[:i]
		}
		if strings.TrimSpace(v) == entry {
			found = true
			continue
		}
		kept = append(kept, line)
	}
	return []byte(strings.Join(kept, "\n")), found
}

// withEntries appends the entries not already present, keeping the file
// as it was otherwise.
func withEntries(b []byte, entries []string) []byte {
	have := map[string]bool{}
	for _, e := range listEntries(b) {
		have[e] = true
	}
	out := append([]byte(nil), b...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	for _, e := range entries {
		if !have[e] {
			have[e] = true
			out = append(out, e...)
			out = append(out, '\n')
		}
	}
	return out
}

func renderList(entries []string) []byte {
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func toBytes(files map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(files))
	for k, v := range files {
		out[k] = []byte(v)
	}
	return out
}

func toStrings(files map[string][]byte) map[string]string {
	out := make(map[string]string, len(files))
	for k, v := range files {
		out[k] = string(v)
	}
	return out
}
