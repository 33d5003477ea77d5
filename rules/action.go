package rules

import (
	"fmt"
	"strings"
)

// Action is what a decision tells the caller to do. The order is severity:
// a decision takes the most severe action among matched active rules.
type Action uint8

const (
	Allow     Action = iota // let it through
	Alert                   // let it through and tell the user
	Review                  // let it through and open a case
	Challenge               // ask for step-up verification first
	Block                   // refuse this payment
	Lock                    // refuse and lock the account
)

var actionNames = [...]string{"allow", "alert", "review", "challenge", "block", "lock"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", a)
}

// ParseAction reads an action name as written in rule files.
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if strings.EqualFold(s, n) {
			return Action(i), nil
		}
	}
	return Allow, fmt.Errorf("unknown action %q: want one of %s", s, strings.Join(actionNames[:], ", "))
}

// MarshalText makes actions read as names in YAML and JSON.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText parses an action name.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}
