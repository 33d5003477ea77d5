package rules

import (
	"os"
	"path/filepath"
	"testing"
)

var holderFiles = map[string][]byte{
	"a.yaml":          []byte("- id: r1\n  when: event.type == \"payment\"\n  action: review\n"),
	"lists/vip.txt":   []byte("a1\n"),
	SettingsFile:      []byte("thresholds: []\n"),
	"lists/other.txt": []byte("x\n"),
}

func TestInstallSetsTheGivenSeq(t *testing.T) {
	var h Holder
	rs1, err := Compile(holderFiles, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Swap(rs1)
	rs2, err := Compile(holderFiles, nil)
	if err != nil {
		t.Fatal(err)
	}
	if old := h.Install(rs2, 42); old != rs1 {
		t.Errorf("Install returned %p, want the previous set %p", old, rs1)
	}
	if v := h.Load().Version; v.Seq != 42 || v.Hash != rs1.Version.Hash {
		t.Errorf("version = %v, want seq 42 with hash %s", v, rs1.Version.Hash)
	}
	rs3, _ := Compile(holderFiles, nil)
	h.Swap(rs3)
	if v := h.Load().Version; v.Seq != 43 {
		t.Errorf("Swap after Install: seq %d, want 43", v.Seq)
	}
}

func TestWriteDirReplacesTheRuleFilesAndTheWatcherDoesNotReloadThem(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "README.md")
	if err := os.WriteFile(keep, []byte("not a rule file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "old.yaml"), []byte("[]"), 0o644); err != nil {
		t.Fatal(err)
	}
	var h Holder
	rs, err := Compile(holderFiles, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Install(rs, 7)
	if err := h.WriteDir(dir, holderFiles); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFiles(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if HashFiles(got) != rs.Version.Hash {
		t.Errorf("directory files %v, want exactly the written set", sortedNames(got))
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a file that is not a rule file was touched: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name()[0] == '.' {
			t.Errorf("temporary %s left behind", e.Name())
		}
	}

	reloads := 0
	w := &Watcher{Dir: dir, Holder: &h, OnReload: func(*RuleSet) { reloads++ }, OnError: func(err error) { t.Error(err) }}
	w.poll()
	if reloads != 0 || h.Load() != rs || h.Load().Version.Seq != 7 {
		t.Errorf("watcher reloaded the installed directory: reloads %d, version %v", reloads, h.Load().Version)
	}

	// A hand edit is still picked up.
	if err := os.WriteFile(filepath.Join(dir, "lists", "vip.txt"), []byte("a1\na2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.poll()
	if reloads != 1 || h.Load().Version.Seq != 8 {
		t.Errorf("after a hand edit: reloads %d, version %v; want one reload to seq 8", reloads, h.Load().Version)
	}
}

func TestWriteDirRefusesNamesOutsideTheDirectory(t *testing.T) {
	dir := t.TempDir()
	var h Holder
	for _, name := range []string{"../x.yaml", "lists/../../x.txt", "/abs.yaml", "sub/x.yaml", "lists/x.yaml", ".x.yaml", "x.txt"} {
		if err := h.WriteDir(dir, map[string][]byte{name: []byte("[]")}); err == nil {
			t.Errorf("WriteDir accepted %q", name)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "x.yaml")); err == nil {
		t.Error("a file was written outside the directory")
	}
}
