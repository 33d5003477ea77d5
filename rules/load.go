package rules

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// SettingsFile is the name of the optional settings file in a rule directory.
const SettingsFile = "settings.yaml"

// FeaturesFile is the name under which a published rule-set version
// carries the window feature definitions its rules were written against
// (the daemon's rules.features file, or an analyst's publish). Compile does
// not read it: the caller compiles the features and passes them, so a
// version's rules and features change together, fleet-wide. A version
// without it leaves the features as they are.
const FeaturesFile = "features.yaml"

// Load reads and compiles the rule directory dir. Errors in files are
// *CompileError naming the file as dir/name.
func Load(dir string, feats FeatureIndex) (*RuleSet, error) {
	files, err := ReadFiles(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("load rules %s: %w", dir, err)
	}
	return compile(files, dir, feats)
}

// LoadDir reads the rule directory dir once and compiles what it read: the
// files, keyed as ReadFiles keys them (what riskd publishes), and the set
// built from exactly those files, whose Version.Hash is their HashFiles.
// Errors in files are *CompileError naming the file as dir/name.
func LoadDir(dir string, feats FeatureIndex) (map[string][]byte, *RuleSet, error) {
	files, err := ReadFiles(os.DirFS(dir))
	if err != nil {
		return nil, nil, fmt.Errorf("load rules %s: %w", dir, err)
	}
	rs, err := compile(files, dir, feats)
	if err != nil {
		return nil, nil, err
	}
	return files, rs, nil
}

// LoadFS reads and compiles a rule directory from fsys.
func LoadFS(fsys fs.FS, feats FeatureIndex) (*RuleSet, error) {
	files, err := ReadFiles(fsys)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	return Compile(files, feats)
}

// ReadFiles returns the files of a rule directory that Compile uses: the
// top-level *.yaml and *.yml files and lists/*.txt, keyed by slash path.
func ReadFiles(fsys fs.FS) (map[string][]byte, error) {
	files := make(map[string][]byte)
	for _, pattern := range []string{"*.yaml", "*.yml", "lists/*.txt"} {
		names, err := fs.Glob(fsys, pattern)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			b, err := fs.ReadFile(fsys, name)
			if err != nil {
				return nil, err
			}
			files[name] = b
		}
	}
	return files, nil
}

// Compile builds a rule set from files keyed by slash path relative to the
// rule directory, as ReadFiles returns them (this is how pushed rules arrive).
func Compile(files map[string][]byte, feats FeatureIndex) (*RuleSet, error) {
	return compile(files, "", feats)
}

// HashFiles is the content hash Version.Hash holds for these files.
func HashFiles(files map[string][]byte) string {
	names := sortedNames(files)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(files[n]))
		h.Write(files[n])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func sortedNames(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func compile(files map[string][]byte, dir string, feats FeatureIndex) (*RuleSet, error) {
	display := func(name string) string {
		if dir == "" {
			return name
		}
		return filepath.Join(dir, filepath.FromSlash(name))
	}
	rs := &RuleSet{
		Version: Version{Hash: HashFiles(files)},
		Lists:   make(map[string]map[string]struct{}),
	}
	names := sortedNames(files)
	for _, name := range names {
		if dir, base := path.Split(name); dir == "lists/" && strings.HasSuffix(base, ".txt") {
			rs.Lists[strings.TrimSuffix(base, ".txt")] = parseList(files[name])
		}
	}
	c := newCompiler(rs, feats)
	seen := make(map[string]*Rule)
	for _, name := range names {
		if strings.Contains(name, "/") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		if name == FeaturesFile {
			continue // compiled by the caller into feats
		}
		if name == SettingsFile {
			th, err := parseSettings(files[name], display(name))
			if err != nil {
				return nil, err
			}
			rs.Thresholds = th
			continue
		}
		rules, err := c.parseFile(files[name], display(name))
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			if prev, ok := seen[r.rule.ID]; ok {
				return nil, r.errAt(r.idNode, "duplicate id, first defined at %s:%d", prev.File, prev.Line)
			}
			seen[r.rule.ID] = r.rule
			rs.Rules = append(rs.Rules, r.rule)
		}
		for _, r := range rules {
			if err := c.runExamples(r); err != nil {
				return nil, err
			}
		}
	}
	rs.index()
	return rs, nil
}

func parseList(b []byte) map[string]struct{} {
	set := make(map[string]struct{})
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line != "" {
			set[line] = struct{}{}
		}
	}
	return set
}

func parseSettings(b []byte, file string) ([]Threshold, error) {
	var s struct {
		Thresholds []Threshold `yaml:"thresholds"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil && err.Error() != "EOF" {
		return nil, &CompileError{File: file, Msg: err.Error()}
	}
	sort.SliceStable(s.Thresholds, func(i, j int) bool { return s.Thresholds[i].Score < s.Thresholds[j].Score })
	return s.Thresholds, nil
}

// parsedRule is a rule with the YAML nodes its errors point at.
type parsedRule struct {
	rule     *Rule
	node     *yaml.Node
	idNode   *yaml.Node
	whenNode *yaml.Node
	// the wallet keys, when the rule declares them
	codeNode, messageNode, categoryNode, stepUpNode *yaml.Node
	// unlockNode is the unlock_clears list, when the rule declares it.
	unlockNode *yaml.Node
}

// resolveWallet checks the wallet keys against the rule's action and
// fills the ones left out with the action's defaults (WalletDefault).
func (p *parsedRule) resolveWallet() error {
	r := p.rule
	allowed := CategoriesFor(r.Action)
	if p.categoryNode != nil && !slices.Contains(allowed, r.Wallet.Category) {
		return p.errAt(p.categoryNode, "category %s does not go with action %s: want one of %s",
			r.Wallet.Category, r.Action, strings.Join(allowed, ", "))
	}
	if p.stepUpNode != nil && r.Action != Challenge {
		return p.errAt(p.stepUpNode, "step_up is only for action challenge, not %s", r.Action)
	}
	def := WalletDefault(r.Action)
	if p.codeNode == nil {
		r.Wallet.Code = def.Code
	}
	if p.categoryNode == nil {
		r.Wallet.Category = def.Category
	}
	if p.stepUpNode == nil {
		r.Wallet.StepUp = def.StepUp
	}
	if p.messageNode == nil {
		r.Wallet.UserMessage = def.UserMessage
	}
	return nil
}

// validCode reports whether s is a reason code: 1 to MaxCodeLen bytes of
// a-z, 0-9, _, . and -.
func validCode(s string) bool {
	if s == "" || len(s) > MaxCodeLen {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// checkUserMessage returns what is wrong with a user message, or "".
func checkUserMessage(s string) string {
	if strings.TrimSpace(s) == "" {
		return "user_message must not be empty (leave it out for the action's default)"
	}
	if n := utf8.RuneCountInString(s); n > MaxUserMessage {
		return fmt.Sprintf("user_message has %d characters, limit is %d", n, MaxUserMessage)
	}
	if !utf8.ValidString(s) {
		return "user_message is not valid UTF-8"
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return fmt.Sprintf("user_message must be one line of text without control characters (found %U)", c)
		}
	}
	return ""
}

func (p *parsedRule) errAt(n *yaml.Node, format string, args ...any) *CompileError {
	if n == nil {
		n = p.node
	}
	return &CompileError{RuleID: p.rule.ID, File: p.rule.File, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)}
}

func (c *compiler) parseFile(b []byte, file string) ([]*parsedRule, error) {
	c.src = b
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, &CompileError{File: file, Msg: err.Error()}
	}
	if doc.Kind == 0 {
		return nil, nil // empty file
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.SequenceNode {
		return nil, &CompileError{File: file, Line: root.Line, Col: root.Column, Msg: "a rule file is a YAML list of rules"}
	}
	var out []*parsedRule
	for _, item := range root.Content {
		p, err := c.parseRule(item, file)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (c *compiler) parseRule(n *yaml.Node, file string) (*parsedRule, error) {
	p := &parsedRule{rule: &Rule{File: file, Line: n.Line}, node: n}
	if n.Kind != yaml.MappingNode {
		return nil, p.errAt(n, "a rule is a map with id, when and action")
	}
	// Find the id first so every later error names the rule.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "id" {
			p.idNode = n.Content[i+1]
			p.rule.ID = p.idNode.Value
		}
	}
	if p.idNode == nil || p.rule.ID == "" {
		return nil, p.errAt(p.idNode, "missing id")
	}
	if p.idNode.Kind != yaml.ScalarNode {
		return nil, p.errAt(p.idNode, "id must be a string")
	}
	r := p.rule
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value != "examples" && k.Value != "unlock_clears" && v.Kind != yaml.ScalarNode {
			return nil, p.errAt(v, "%s must be a single value", k.Value)
		}
		switch k.Value {
		case "id":
		case "when":
			p.whenNode = v
			r.When = v.Value
		case "action":
			a, err := ParseAction(v.Value)
			if err != nil {
				return nil, p.errAt(v, "%v", err)
			}
			r.Action = a
		case "score":
			if err := v.Decode(&r.Score); err != nil {
				return nil, p.errAt(v, "score must be an integer, not %q", v.Value)
			}
		case "lock_for":
			if v.Value == "indefinite" {
				r.LockFor = LockIndefinite
				continue
			}
			d, err := time.ParseDuration(v.Value)
			if err != nil || d <= 0 {
				return nil, p.errAt(v, "lock_for must be a positive duration like 30m, or indefinite, not %q", v.Value)
			}
			r.LockFor = d
		case "unlock_clears":
			if v.Kind != yaml.SequenceNode {
				return nil, p.errAt(v, "unlock_clears must be a list of window features, e.g. [failed_logins_15m]")
			}
			p.unlockNode = v
		case "when_warming":
			switch v.Value {
			case "allow":
				r.SkipWhileWarming = false
			case "skip":
				r.SkipWhileWarming = true
			default:
				return nil, p.errAt(v, "unknown when_warming %q: want allow (decide with the partial window) or skip (leave the rule out while a feature it reads is warming)", v.Value)
			}
		case "alert":
			r.Alert = v.Value
		case "code":
			if !validCode(v.Value) {
				return nil, p.errAt(v, "code must be 1 to %d characters of a-z, 0-9, _, . and -, not %q", MaxCodeLen, v.Value)
			}
			r.Wallet.Code, p.codeNode = v.Value, v
		case "user_message":
			if msg := checkUserMessage(v.Value); msg != "" {
				return nil, p.errAt(v, "%s", msg)
			}
			r.Wallet.UserMessage, p.messageNode = v.Value, v
		case "category":
			if !slices.Contains(Categories, v.Value) {
				return nil, p.errAt(v, "unknown category %q: want one of %s", v.Value, strings.Join(Categories, ", "))
			}
			r.Wallet.Category, p.categoryNode = v.Value, v
		case "step_up":
			if !slices.Contains(StepUps, v.Value) {
				return nil, p.errAt(v, "unknown step_up %q: want one of %s", v.Value, strings.Join(StepUps, ", "))
			}
			r.Wallet.StepUp, p.stepUpNode = v.Value, v
		case "description":
			r.Description = v.Value
		case "mode":
			switch v.Value {
			case "", "active":
				r.Mode = Active
			case "shadow":
				r.Mode = Shadow
			default:
				return nil, p.errAt(v, "unknown mode %q: want active or shadow", v.Value)
			}
		case "examples":
			if v.Kind != yaml.SequenceNode {
				return nil, p.errAt(v, "examples must be a list")
			}
			for _, en := range v.Content {
				var ex example
				if err := en.Decode(&ex); err != nil {
					return nil, p.errAt(en, "bad example: %v", err)
				}
				ex.node = en
				r.examples = append(r.examples, ex)
			}
		default:
			return nil, p.errAt(k, "unknown key %q", k.Value)
		}
	}
	if p.whenNode == nil || strings.TrimSpace(r.When) == "" {
		return nil, p.errAt(p.whenNode, "missing when")
	}
	if r.Action == Lock && r.LockFor == 0 {
		return nil, p.errAt(n, "action lock needs lock_for")
	}
	if err := p.resolveWallet(); err != nil {
		return nil, err
	}
	if err := c.compileRule(p); err != nil {
		return nil, err
	}
	if err := c.unlockClears(p); err != nil {
		return nil, err
	}
	return p, nil
}

// MaxUnlockClears bounds the features one rule's unlock_clears names (an
// account has at most features.MaxWindows window features anyway).
const MaxUnlockClears = 64

// unlockClears checks a lock rule's unlock_clears, or works out its
// default: the window features grouped by account that its when reads.
// It runs after compileRule, which lists the features the rule reads.
func (c *compiler) unlockClears(p *parsedRule) error {
	r := p.rule
	byAccount := func(name string) bool {
		af, ok := c.feats.(AccountFeatures)
		return ok && af.ByAccount(name)
	}
	if p.unlockNode == nil {
		if r.Action != Lock {
			return nil
		}
		for _, name := range r.Features {
			if _, ok := c.feats.Index(name); ok && byAccount(name) {
				r.UnlockClears = append(r.UnlockClears, name)
			}
		}
		return nil
	}
	if r.Action != Lock {
		return p.errAt(p.unlockNode, "unlock_clears is only for action lock, not %s", r.Action)
	}
	if len(p.unlockNode.Content) > MaxUnlockClears {
		return p.errAt(p.unlockNode, "unlock_clears names %d features, at most %d", len(p.unlockNode.Content), MaxUnlockClears)
	}
	r.UnlockClears = make([]string, 0, len(p.unlockNode.Content))
	for _, n := range p.unlockNode.Content {
		if n.Kind != yaml.ScalarNode {
			return p.errAt(n, "unlock_clears must be a list of window feature names")
		}
		if _, ok := c.feats.Index(n.Value); !ok {
			return p.errAt(n, "unlock_clears: unknown feature f.%s (only window features can be reset)", n.Value)
		}
		if !byAccount(n.Value) {
			return p.errAt(n, "unlock_clears: feature %s is not grouped by account; only the account's own window features can be reset (device, IP and payee ones are shared with other accounts)", n.Value)
		}
		if slices.Contains(r.UnlockClears, n.Value) {
			return p.errAt(n, "unlock_clears names %s twice", n.Value)
		}
		r.UnlockClears = append(r.UnlockClears, n.Value)
	}
	return nil
}

// exprPos translates a rune offset inside the when string into a file line
// and column, using the YAML node's position and the raw source lines.
// Single-line plain and quoted scalars are exact (quoted ones unless they
// hold escapes); multi-line and block scalars assume each source line
// contributes its text without indentation plus one separator character.
func exprPos(n *yaml.Node, src []byte, off int) (line, col int) {
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		lines := strings.Split(string(src), "\n")
		remaining := off
		block := -1                            // the block's indentation, from its first non-empty line
		for l := n.Line; l < len(lines); l++ { // n.Line is 1-based: lines[n.Line] is the first content line
			text := lines[l]
			indent := len(text) - len(strings.TrimLeft(text, " "))
			if block < 0 && strings.TrimSpace(text) != "" {
				block = indent
			}
			indent = min(indent, max(block, 0))
			length := utf8.RuneCountInString(text[indent:])
			if remaining <= length {
				return l + 1, indent + remaining + 1
			}
			remaining -= length + 1
		}
		return n.Line, n.Column
	}
	start := n.Column
	if n.Style == yaml.DoubleQuotedStyle || n.Style == yaml.SingleQuotedStyle {
		start++
	}
	lines := strings.Split(string(src), "\n")
	if n.Line-1 >= len(lines) {
		return n.Line, start + off
	}
	first := lines[n.Line-1]
	firstLen := 0
	if n.Column-1 <= len(first) {
		firstLen = utf8.RuneCountInString(first[min(len(first), runeByteOffset(first, start-1)):])
	}
	if off <= firstLen || n.Line >= len(lines) {
		return n.Line, start + off
	}
	remaining := off - firstLen - 1
	for l := n.Line; l < len(lines); l++ {
		text := lines[l]
		indent := len(text) - len(strings.TrimLeft(text, " \t"))
		length := utf8.RuneCountInString(text[indent:])
		if remaining <= length {
			return l + 1, indent + remaining + 1
		}
		remaining -= length + 1
	}
	return n.Line, start + off
}

// runeByteOffset returns the byte offset of the r-th rune of s (0-based).
func runeByteOffset(s string, r int) int {
	i := 0
	for b := range s {
		if i == r {
			return b
		}
		i++
	}
	return len(s)
}
