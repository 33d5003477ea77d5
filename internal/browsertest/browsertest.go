// Package browsertest drives the console in a real headless Chromium for
// tests: it finds the browser (or fails the test under CI=true, skips it
// otherwise), opens a tab per user, signs in with an API token, waits for
// elements by their data-test attribute, reads them and takes screenshots.
//
//	b := browsertest.Start(t)
//	tab := b.Tab(t, "http://"+addr)
//	tab.SignIn(apitest.Secrets[api.RoleSupport])
//	tab.WaitFor("nav")
//	tab.Screenshot("overview")
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Viewport is the size of every tab and screenshot: a laptop screen.
const (
	ViewportWidth  = 1280
	ViewportHeight = 800
)

// WaitBudget bounds every wait for an element or a condition: a test
// that waits longer fails, naming what it waited for.
const WaitBudget = 30 * time.Second

// ScreenshotsEnv names the directory screenshots are written to; unset,
// Screenshot does nothing.
const ScreenshotsEnv = "RISKD_CONSOLE_SCREENSHOTS"

// Browser is one Chromium process for a test.
type Browser struct {
	root context.Context // the first tab's: it owns the browser process
}

// FindChromium returns the browser to run: $RISKD_CHROMIUM, else
// /usr/bin/chromium or the first of chromium, chromium-browser,
// google-chrome on PATH.
func FindChromium() (string, error) {
	if p := os.Getenv("RISKD_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("RISKD_CHROMIUM=%s: %w", p, err)
		}
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no Chromium: install Debian's chromium package or set RISKD_CHROMIUM")
}

// Start launches a headless Chromium that ends with the test. Without a
// browser the test fails when CI=true and is skipped otherwise.
func Start(t testing.TB) *Browser {
	t.Helper()
	path, err := FindChromium()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browser test: %v", err)
		}
		t.Skipf("browser test skipped: %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.WindowSize(ViewportWidth, ViewportHeight),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	// The first tab starts the browser; the other tabs open beside it.
	first, cancel := chromedp.NewContext(alloc, chromedp.WithLogf(func(string, ...any) {}))
	t.Cleanup(cancel)
	if err := chromedp.Do(first); err != nil {
		t.Fatalf("browser test: start %s: %v", path, err)
	}
	return &Browser{root: first}
}

// Tab is one browser tab in its own browser context (its own cookies), so
// two tabs of one Browser are two users.
type Tab struct {
	t    testing.TB
	ctx  context.Context
	base string
}

// Tab opens a tab on the console served at base ("http://host:port").
func (b *Browser) Tab(t testing.TB, base string) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tab := &Tab{t: t, ctx: ctx, base: strings.TrimSuffix(base, "/")}
	tab.Run(chromedp.EmulateViewport(ViewportWidth, ViewportHeight))
	return tab
}

// Sel is the CSS selector of the element whose data-test is id.
func Sel(id string) string { return `[data-test="` + id + `"]` }

// css is Sel as a chromedp selector.
func css(id string) chromedp.CSS { return chromedp.CSS(Sel(id)) }

// Run runs actions within WaitBudget, failing the test on error.
func (tab *Tab) Run(actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	if tab.ctx.Err() == nil && chromedp.FromContext(tab.ctx).Target == nil {
		// The first run starts the tab; a timeout on it would end the tab.
		if err := chromedp.Do(tab.ctx); err != nil {
			tab.t.Fatalf("browser: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(tab.ctx, WaitBudget)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tab.t.Fatalf("browser: %v", err)
	}
}

// value runs one action that returns a value, within WaitBudget.
func value[T any](tab *Tab, a chromedp.Action[T]) T {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, WaitBudget)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tab.t.Fatalf("browser: %v", err)
	}
	return v
}

// Open loads the console at hash ("#/accounts/a1"; "" for the start page).
func (tab *Tab) Open(hash string) {
	tab.t.Helper()
	tab.Run(chromedp.Navigate(tab.base + "/console/" + hash))
}

// Go changes the hash of the page loaded, as a click on a link does.
func (tab *Tab) Go(hash string) {
	tab.t.Helper()
	value(tab, chromedp.Evaluate[string](fmt.Sprintf("location.hash = %q", hash)))
}

// SignIn opens the console and signs in with the API token secret,
// waiting for the nav.
func (tab *Tab) SignIn(secret string) {
	tab.t.Helper()
	tab.Open("")
	tab.Run(
		chromedp.WaitVisible(css("signin-token")),
		chromedp.SendKeys(css("signin-token"), secret),
		chromedp.Click(css("signin-submit")),
		chromedp.WaitVisible(css("nav")),
	)
}

// WaitFor waits until the element with data-test id is visible.
func (tab *Tab) WaitFor(id string) {
	tab.t.Helper()
	tab.Run(chromedp.WaitVisible(css(id)))
}

// WaitGone waits until no element with data-test id is in the page.
func (tab *Tab) WaitGone(id string) {
	tab.t.Helper()
	tab.WaitTrue(fmt.Sprintf("document.querySelector(%q) === null", Sel(id)), "no "+Sel(id))
}

// Present reports whether an element with data-test id is in the page now.
func (tab *Tab) Present(id string) bool {
	tab.t.Helper()
	return value(tab, chromedp.Evaluate[bool](fmt.Sprintf("document.querySelector(%q) !== null", Sel(id))))
}

// Click clicks the element with data-test id, once it is visible.
func (tab *Tab) Click(id string) {
	tab.t.Helper()
	tab.Run(chromedp.WaitVisible(css(id)), chromedp.Click(css(id)))
}

// Fill replaces the value of the input with data-test id, typing value
// key by key as a user does. The old value is emptied by script first:
// chromedp.Clear leaves a value the page's own script set.
func (tab *Tab) Fill(id, value string) {
	tab.t.Helper()
	tab.Run(chromedp.WaitVisible(css(id)))
	tab.SetValue(id, "")
	tab.Run(chromedp.SendKeys(css(id), value))
}

// SetValue sets the value of the input or textarea with data-test id at
// once, as a paste does (one input event), for values whose keys would
// mean something to the page (a newline in a textarea, a long JSON).
func (tab *Tab) SetValue(id, value string) {
	tab.t.Helper()
	tab.WaitFor(id)
	Eval[bool](tab, fmt.Sprintf(`(() => { const t = document.querySelector(%q); t.value = %q;
		t.dispatchEvent(new Event("input", {bubbles: true})); return true; })()`, Sel(id), value))
}

// Select picks option in the select with data-test id.
func (tab *Tab) Select(id, option string) {
	tab.t.Helper()
	tab.Run(chromedp.WaitVisible(css(id)))
	js := fmt.Sprintf(`(() => { const s = document.querySelector(%q); s.value = %q; s.dispatchEvent(new Event("change", {bubbles: true})); return s.value; })()`, Sel(id), option)
	if got := value(tab, chromedp.Evaluate[string](js)); got != option {
		tab.t.Fatalf("browser: %s has no option %q", Sel(id), option)
	}
}

// Text returns the text of the element with data-test id, once visible.
func (tab *Tab) Text(id string) string {
	tab.t.Helper()
	tab.Run(chromedp.WaitVisible(css(id)))
	return value(tab, chromedp.Text(css(id)))
}

// WaitText waits until the text of the element with data-test id contains
// want, and returns that text.
func (tab *Tab) WaitText(id, want string) string {
	tab.t.Helper()
	tab.WaitTrue(fmt.Sprintf("(document.querySelector(%q)?.innerText ?? '').includes(%q)", css(id), want),
		fmt.Sprintf("%s containing %q", css(id), want))
	return tab.Text(id)
}

// WaitTrue polls the JavaScript expression js until it is true, failing
// the test after WaitBudget with what as the condition's name.
func (tab *Tab) WaitTrue(js, what string) {
	tab.t.Helper()
	deadline := time.Now().Add(WaitBudget)
	for {
		ctx, cancel := context.WithTimeout(tab.ctx, WaitBudget)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body.innerText"))
			cancel()
			tab.t.Fatalf("browser: waited %s for %s (last error %v); the page says:\n%s", WaitBudget, what, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Eval evaluates js in the page, awaiting a promise, and returns its
// result as JSON-decoded into T.
func Eval[T any](tab *Tab, js string) T {
	tab.t.Helper()
	return value(tab, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// Screenshot writes the viewport as $RISKD_CONSOLE_SCREENSHOTS/<name>.png
// when that variable is set.
func (tab *Tab) Screenshot(name string) {
	tab.t.Helper()
	dir := os.Getenv(ScreenshotsEnv)
	if dir == "" {
		return
	}
	png := value(tab, chromedp.CaptureScreenshot())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tab.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		tab.t.Fatalf("screenshot %s: %v", name, err)
	}
}

// Attr returns the attribute name of the element with data-test id ("" if absent).
func (tab *Tab) Attr(id, name string) string {
	tab.t.Helper()
	tab.Run(chromedp.WaitVisible(css(id)))
	return value(tab, chromedp.Evaluate[string](fmt.Sprintf("document.querySelector(%q).getAttribute(%q) ?? ''", Sel(id), name)))
}

// ClickCSS clicks the first element matching the CSS selector, once
// visible: for a control within one row ("[data-event=e1] [data-test=x]").
func (tab *Tab) ClickCSS(selector string) {
	tab.t.Helper()
	tab.Run(chromedp.WaitVisible(chromedp.CSS(selector)), chromedp.Click(chromedp.CSS(selector)))
}
