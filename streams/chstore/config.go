package chstore

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
)

// Config says where ClickHouse is and how hard to try. Zero durations take
// the defaults of DefaultConfig; an empty Database means "riskd".
type Config struct {
	// Addr is host:port of the native protocol (9000), not HTTP (8123).
	Addr string
	// Database is created if missing. It must be a plain identifier
	// (letters, digits, underscore) because it is spliced into DDL.
	Database string
	// User and Password authenticate. Password never appears in logs or
	// errors returned by this package.
	User, Password string
	// DialTimeout bounds one TCP connect plus handshake.
	DialTimeout time.Duration
	// RetryMin and RetryMax bound the exponential backoff (with jitter)
	// between attempts of a failed write.
	RetryMin, RetryMax time.Duration
	// AttemptTimeout bounds one write attempt (all tables of one batch), so a
	// connection that hangs instead of failing is abandoned and retried.
	AttemptTimeout time.Duration
	// Logger receives one warning per failed write attempt; nil means
	// slog.Default().
	Logger *slog.Logger
	// OnRetry, if set, is called after every failed write attempt that
	// will be retried (each one Retries counts), with the operation ("write
	// decisions", "write lock"...) and the error, password redacted: the
	// hook for an error counter, so the store needs no metrics of its own.
	// It runs on the writing goroutine, several at once, so it must be
	// quick and safe for concurrent use. Errors that are not retried are
	// returned to the caller instead.
	OnRetry func(op string, err error)
	// RecoveryWindow bounds the recovery window a Store starts in at Open
	// (see Store.Recovering): while it lasts, WriteDecisions asks each
	// table which of a batch's event ids it holds already and leaves those
	// rows out, so that what an earlier run stored but did not commit is
	// not stored twice when it is written again; it ends after this many
	// consecutive decisions of which no row was stored. Set it above the
	// stored rows a crash can leave past the committed offsets: the
	// daemon uses (StoreParallelism+1) x BatchSize. 0 means
	// DefaultRecoveryWindow (20000, that with package streams' defaults);
	// negative turns the window off, and with it the look-up before a
	// retry.
	RecoveryWindow int
	// OnSkip, if set, is called each time WriteDecisions leaves rows out
	// because they were stored already, with the table (one of
	// DecisionTables) and how many (SkippedRows counts the same): the hook
	// for a counter. Like OnRetry it runs on writing goroutines, several at
	// once.
	OnSkip func(table string, rows int)
}

// DefaultConfig is a local server with the default user.
func DefaultConfig() Config {
	return Config{
		Addr:           "127.0.0.1:9000",
		Database:       "riskd",
		User:           "default",
		DialTimeout:    5 * time.Second,
		RetryMin:       100 * time.Millisecond,
		RetryMax:       10 * time.Second,
		AttemptTimeout: 30 * time.Second,
		RecoveryWindow: DefaultRecoveryWindow,
	}
}

// withDefaults fills zero values from DefaultConfig (Addr excepted: an empty
// address is a configuration error, not a request for localhost).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Database == "" {
		c.Database = d.Database
	}
	if c.User == "" {
		c.User = d.User
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.RetryMin == 0 {
		c.RetryMin = d.RetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(d.RetryMax, c.RetryMin)
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = d.AttemptTimeout
	}
	if c.RecoveryWindow == 0 {
		c.RecoveryWindow = d.RecoveryWindow
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks the whole config and names the offending key.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("clickhouse.addr: empty; want host:port of the native protocol, e.g. 127.0.0.1:9000"))
	}
	if c.Database != "" && !identRE.MatchString(c.Database) {
		errs = append(errs, fmt.Errorf("clickhouse.database: %q is not a plain identifier (letters, digits, _)", c.Database))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"dial_timeout", c.DialTimeout}, {"retry_min", c.RetryMin}, {"retry_max", c.RetryMax}, {"attempt_timeout", c.AttemptTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("clickhouse.%s: %v is negative", d.key, d.v))
		}
	}
	if c.RetryMin > 0 && c.RetryMax > 0 && c.RetryMin > c.RetryMax {
		errs = append(errs, fmt.Errorf("clickhouse.retry_min: %v is above retry_max %v", c.RetryMin, c.RetryMax))
	}
	return errors.Join(errs...)
}

// String describes the config without the password, so printing a Config
// by accident leaks nothing.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = " password=REDACTED"
	}
	return fmt.Sprintf("clickhouse://%s@%s/%s%s", c.User, c.Addr, c.Database, pw)
}

// LogValue makes slog print the redacted form too.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }
