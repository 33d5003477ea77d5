package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// Where riskctl finds a running riskd: RISKCTL_URL and RISKCTL_TOKEN. Not
// RISKD_*: riskd refuses RISKD_ variables it does not know, and the two
// often share a shell.
const (
	envURL     = "RISKCTL_URL"
	envToken   = "RISKCTL_TOKEN"
	defaultURL = "http://127.0.0.1:8080"
)

// apiClient calls riskd's HTTP API with a bearer token.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// newAPIClient reads RISKCTL_URL and RISKCTL_TOKEN from getenv. A missing
// token is an error that says which variable to set.
func newAPIClient(getenv func(string) string) (*apiClient, error) {
	base := strings.TrimRight(getenv(envURL), "/")
	if base == "" {
		base = defaultURL
	}
	token := getenv(envToken)
	if token == "" {
		return nil, fmt.Errorf("%s is empty: set it to an API token of riskd (the secret part of auth.tokens)", envToken)
	}
	return &apiClient{base: base, token: token, http: &http.Client{Timeout: 5 * time.Minute}}, nil
}

// apiClientFromEnv is newAPIClient on the process environment.
func apiClientFromEnv() (*apiClient, error) { return newAPIClient(os.Getenv) }

// apiError is a non-2xx answer: the status and riskd's error text.
type apiError struct {
	Status int
	Msg    string
	Body   []byte
}

func (e *apiError) Error() string {
	return fmt.Sprintf("riskd answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// do sends method path with body (JSON-encoded unless it is []byte or nil)
// and decodes a 2xx JSON answer into out (unless out is nil). A non-2xx
// answer is an *apiError.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, contentType = bytes.NewReader(b), "application/octet-stream"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("%s %s: encoding the request: %w", method, path, err)
		}
		rd, contentType = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is riskd running there? set %s)", method, path, err, envURL)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &apiError{Status: resp.StatusCode, Msg: msg, Body: data}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], data...)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// exitError makes main exit with Code instead of 1: lint exits 1 for
// problems found and 2 for a usage or I/O error, as hooks expect.
type exitError struct {
	Code int
	Err  error
}

func (e *exitError) Error() string { return e.Err.Error() }
func (e *exitError) Unwrap() error { return e.Err }

// exitCode is the process exit code for err.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

// printJSON GETs path and prints riskd's JSON answer as it came, for the
// commands' --json; what names the command in an error.
func (c *apiClient) printJSON(ctx context.Context, path, what string, stdout io.Writer) error {
	var raw json.RawMessage
	if err := c.do(ctx, "GET", path, nil, &raw); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	_, err := fmt.Fprintln(stdout, string(raw))
	return err
}
