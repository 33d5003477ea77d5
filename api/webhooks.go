package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"riskd/streams/chstore"
	"riskd/streams/notify"
)

// Bounds of the alert subscriber routes.
const (
	// MaxWebhooks is the number of subscribers the API may manage (the
	// config file's are not counted): each has Workers goroutines and a
	// queue of its own.
	MaxWebhooks = 100
	// DefaultParkedList and MaxParkedList bound GET .../parked?limit=.
	DefaultParkedList, MaxParkedList = 100, 1000
	// MaxResendAll bounds one POST .../parked/resend: resends are made one
	// after the other inside the request.
	MaxResendAll = 100
	// webhookWriteTimeout bounds a change's store and audit writes; they
	// run on past a client that hangs up, so a change is not half made.
	webhookWriteTimeout = 30 * time.Second
)

// webhookName is what the API accepts as a subscriber name: it is a metric
// label and a path segment.
var webhookName = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// Subscriber sources in GET /v1/webhooks.
const (
	SourceAPI    = "api"    // managed through these routes, stored in webhook_subscribers
	SourceConfig = "config" // from notify.webhooks in the config file: read-only here
)

// WebhookService manages the alert subscribers (webhooks) through the API:
// it stores each change in webhook_subscribers, applies it to the running
// notifier, and audits it. Changes are serialized here; riskd instances
// sharing a database see each other's changes only when they restart (Load).
type WebhookService struct {
	store  *chstore.Store
	n      *notify.Notifier
	config map[string]bool // names of the config file's subscribers
	now    func() time.Time
	log    *slog.Logger

	mu   sync.Mutex
	subs map[string]chstore.WebhookSubscriberRow // the API-managed ones, as stored
	// resending is held during a resend, so two requests cannot deliver
	// the same parked notification twice from this riskd.
	resending sync.Mutex
}

// NewWebhookService manages API subscribers on n, stored in store;
// configNames are the config file's subscribers, which it lists but does
// not change. Call Load before serving.
func NewWebhookService(store *chstore.Store, n *notify.Notifier, configNames []string, now func() time.Time, log *slog.Logger) *WebhookService {
	s := &WebhookService{store: store, n: n, config: map[string]bool{}, now: now, log: log,
		subs: map[string]chstore.WebhookSubscriberRow{}}
	for _, name := range configNames {
		s.config[name] = true
	}
	return s
}

// Load adds the stored subscribers to the notifier (paused ones paused), so
// they survive a restart. A stored name that the config file also uses is
// skipped with a warning: the config file wins.
func (s *WebhookService) Load(ctx context.Context) error {
	rows, err := s.store.WebhookSubscribers(ctx)
	if err != nil {
		return fmt.Errorf("load webhook subscribers: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		if s.config[r.Name] {
			s.log.Warn("webhooks: a subscriber stored through the API has the name of a config file subscriber; the config file's is used",
				"subscriber", r.Name)
			continue
		}
		if err := s.n.Add(notify.Subscriber{Name: r.Name, URL: r.URL, Kinds: r.Kinds, Secret: r.Secret}); err != nil {
			return fmt.Errorf("load webhook subscriber %s: %w", r.Name, err)
		}
		if err := s.n.SetPaused(r.Name, r.Paused); err != nil {
			return fmt.Errorf("load webhook subscriber %s: %w", r.Name, err)
		}
		s.subs[r.Name] = r
	}
	return nil
}

// WebhookView is a subscriber as the API shows it: never its secret.
type WebhookView struct {
	Name  string   `json:"name"`
	URL   string   `json:"url"`
	Kinds []string `json:"kinds"`
	// Paused subscribers are sent nothing; their notifications are parked.
	Paused bool `json:"paused"`
	// Source is "api" or "config" (read-only here).
	Source string `json:"source"`
	// SecretFingerprint is the first 8 hex digits of the secret's SHA-256.
	SecretFingerprint string `json:"secret_fingerprint"`
	// Version, UpdatedAt and UpdatedBy are the last change (api only).
	Version   uint64     `json:"version,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	UpdatedBy string     `json:"updated_by,omitempty"`
	// Delivered, Retried, DroppedOverflow and Abandoned count since this
	// riskd started (or the subscriber was added).
	Delivered       uint64 `json:"delivered"`
	Retried         uint64 `json:"retried"`
	DroppedOverflow uint64 `json:"dropped_overflow"`
	Abandoned       uint64 `json:"abandoned"`
	// Parked counts its notifications waiting in webhook_dead_letters (all
	// instances, resent ones excluded).
	Parked uint64 `json:"parked"`
}

// ParkedView is a parked notification as GET .../parked shows it.
type ParkedView struct {
	ID        uint64          `json:"id"`
	Kind      string          `json:"kind"`
	AccountID string          `json:"account_id"`
	EventID   string          `json:"event_id,omitempty"`
	RuleID    string          `json:"rule_id,omitempty"`
	Attempts  uint32          `json:"attempts"`
	LastError string          `json:"last_error"`
	ParkedAt  time.Time       `json:"parked_at"`
	Body      json.RawMessage `json:"body"`
}

// Routes are the admin-only routes of alert subscribers.
func (s *WebhookService) Routes() []Route {
	return []Route{
		{Pattern: "GET /v1/webhooks", Handler: http.HandlerFunc(s.list)},
		{Pattern: "POST /v1/webhooks", Handler: http.HandlerFunc(s.create)},
		{Pattern: "PATCH /v1/webhooks/{name}", Handler: http.HandlerFunc(s.update)},
		{Pattern: "DELETE /v1/webhooks/{name}", Handler: http.HandlerFunc(s.remove)},
		{Pattern: "POST /v1/webhooks/{name}/rotate-secret", Handler: http.HandlerFunc(s.rotate)},
		{Pattern: "GET /v1/webhooks/{name}/parked", Handler: http.HandlerFunc(s.parked)},
		{Pattern: "POST /v1/webhooks/{name}/parked/{id}/resend", Handler: http.HandlerFunc(s.resendOne)},
		{Pattern: "POST /v1/webhooks/{name}/parked/resend", Handler: http.HandlerFunc(s.resendAll)},
	}
}

func (s *WebhookService) list(w http.ResponseWriter, r *http.Request) {
	parked, err := s.store.WebhookDeadLetterCounts(r.Context())
	if err != nil {
		WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []WebhookView{}
	for _, info := range s.n.Subscribers() {
		out = append(out, s.view(info, parked[info.Name]))
	}
	slices.SortFunc(out, func(a, b WebhookView) int { return strings.Compare(a.Name, b.Name) })
	WriteJSON(w, http.StatusOK, struct {
		Webhooks []WebhookView `json:"webhooks"`
	}{out})
}

// view builds a subscriber's view; s.mu is held.
func (s *WebhookService) view(info notify.SubscriberInfo, parked uint64) WebhookView {
	v := WebhookView{Name: info.Name, URL: info.URL, Kinds: info.Kinds, Paused: info.Paused, Source: SourceConfig,
		SecretFingerprint: info.SecretFingerprint, Delivered: info.Stats.Delivered, Retried: info.Stats.Retried,
		DroppedOverflow: info.Stats.DroppedOverflow, Abandoned: info.Stats.Abandoned, Parked: parked}
	if v.Kinds == nil {
		v.Kinds = []string{}
	}
	if row, ok := s.subs[info.Name]; ok {
		at := row.UpdatedAt
		v.Source, v.Version, v.UpdatedAt, v.UpdatedBy = SourceAPI, row.Version, &at, row.UpdatedBy
	}
	return v
}

// current returns the view of one subscriber; s.mu is held.
func (s *WebhookService) current(name string) (WebhookView, bool) {
	for _, info := range s.n.Subscribers() {
		if info.Name == name {
			return s.view(info, 0), true
		}
	}
	return WebhookView{}, false
}

// webhookBody is the JSON of POST and PATCH; PATCH leaves out what it
// does not change.
type webhookBody struct {
	Name   string    `json:"name"`
	URL    *string   `json:"url"`
	Kinds  *[]string `json:"kinds"`
	Paused *bool     `json:"paused"`
}

func (s *WebhookService) create(w http.ResponseWriter, r *http.Request) {
	var body webhookBody
	if !DecodeJSON(w, r, &body) {
		return
	}
	if !webhookName.MatchString(body.Name) {
		WriteError(w, http.StatusBadRequest, fmt.Sprintf("name: %q is not 1 to 64 of a-z, 0-9 and -", body.Name))
		return
	}
	if body.URL == nil {
		WriteError(w, http.StatusBadRequest, "url: missing; the subscriber's http(s) endpoint")
		return
	}
	secret, err := newSecret()
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	row := chstore.WebhookSubscriberRow{Name: body.Name, URL: *body.URL, Secret: secret}
	if body.Kinds != nil {
		row.Kinds = *body.Kinds
	}
	if body.Paused != nil {
		row.Paused = *body.Paused
	}
	if !validWebhook(w, row) {
		return
	}
	caller, _ := CallerFrom(r.Context())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), webhookWriteTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.current(row.Name); exists || s.config[row.Name] {
		WriteError(w, http.StatusConflict, "webhook "+row.Name+" already exists")
		return
	}
	if len(s.subs) >= MaxWebhooks {
		WriteError(w, http.StatusConflict, fmt.Sprintf("at most %d webhooks may be managed through the API; remove one first", MaxWebhooks))
		return
	}
	now := s.now()
	row.Version, row.UpdatedAt, row.UpdatedBy = chstore.WebhookSubscriberVersion(0, now), now, caller.Name
	if err := s.store.WriteWebhookSubscriber(ctx, row); err != nil {
		WriteError(w, http.StatusServiceUnavailable, "webhook "+row.Name+" not stored: "+err.Error())
		return
	}
	if err := s.n.Add(notify.Subscriber{Name: row.Name, URL: row.URL, Kinds: row.Kinds, Secret: secret}); err != nil {
		writeNotifyError(w, row.Name, err)
		return
	}
	if err := s.n.SetPaused(row.Name, row.Paused); err != nil {
		writeNotifyError(w, row.Name, err)
		return
	}
	s.subs[row.Name] = row
	if !s.audit(ctx, w, caller, "webhook.create", row, 0, describe(row)) {
		return
	}
	v, _ := s.current(row.Name)
	WriteJSON(w, http.StatusCreated, struct {
		WebhookView
		// Secret is shown this once; riskd signs with it.
		Secret string `json:"secret"`
	}{v, secret})
}

func (s *WebhookService) update(w http.ResponseWriter, r *http.Request) {
	var body webhookBody
	if !DecodeJSON(w, r, &body) {
		return
	}
	name := r.PathValue("name")
	if body.Name != "" && body.Name != name {
		WriteError(w, http.StatusBadRequest, "name: a webhook cannot be renamed; create one and delete the other")
		return
	}
	s.change(w, r, name, func(row *chstore.WebhookSubscriberRow) (string, string, bool) {
		action, parts := "webhook.update", []string{}
		if body.URL != nil && *body.URL != row.URL {
			row.URL = *body.URL
			parts = append(parts, "url "+row.URL)
		}
		if body.Kinds != nil && !slices.Equal(*body.Kinds, row.Kinds) {
			row.Kinds = *body.Kinds
			parts = append(parts, "kinds "+kindsText(row.Kinds))
		}
		if body.Paused != nil && *body.Paused != row.Paused {
			row.Paused = *body.Paused
			if len(parts) == 0 {
				action = map[bool]string{true: "webhook.pause", false: "webhook.resume"}[row.Paused]
			}
			parts = append(parts, map[bool]string{true: "paused", false: "resumed"}[row.Paused])
		}
		return action, strings.Join(parts, ", "), len(parts) > 0
	}, nil)
}

func (s *WebhookService) rotate(w http.ResponseWriter, r *http.Request) {
	secret, err := newSecret()
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.change(w, r, r.PathValue("name"), func(row *chstore.WebhookSubscriberRow) (string, string, bool) {
		old := notify.Fingerprint([]byte(row.Secret))
		row.Secret = secret
		return "webhook.rotate", "secret " + old + " replaced by " + notify.Fingerprint([]byte(secret)), true
	}, func(v WebhookView) any {
		return struct {
			WebhookView
			Secret string `json:"secret"`
		}{v, secret}
	})
}

func (s *WebhookService) remove(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	caller, _ := CallerFrom(r.Context())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), webhookWriteTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	row, ok := s.managed(w, name)
	if !ok {
		return
	}
	old := row.Version
	now := s.now()
	row.Deleted, row.Version, row.UpdatedAt, row.UpdatedBy = true, chstore.WebhookSubscriberVersion(old, now), now, caller.Name
	if err := s.store.WriteWebhookSubscriber(ctx, row); err != nil {
		WriteError(w, http.StatusServiceUnavailable, "webhook "+name+" not removed: "+err.Error())
		return
	}
	delete(s.subs, name)
	if err := s.n.Remove(name); err != nil {
		writeNotifyError(w, name, err)
		return
	}
	if !s.audit(ctx, w, caller, "webhook.delete", row, old, "removed") {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// change applies edit to an API subscriber, stores the new version,
// applies it to the notifier and audits it; answer shapes the 200 body
// (nil: the view). edit returns the audit action and detail, and false
// when nothing changed (then nothing is written).
func (s *WebhookService) change(w http.ResponseWriter, r *http.Request, name string,
	edit func(*chstore.WebhookSubscriberRow) (action, detail string, changed bool), answer func(WebhookView) any) {
	caller, _ := CallerFrom(r.Context())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), webhookWriteTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	row, ok := s.managed(w, name)
	if !ok {
		return
	}
	old := row.Version
	action, detail, changed := edit(&row)
	if changed {
		if !validWebhook(w, row) {
			return
		}
		now := s.now()
		row.Version, row.UpdatedAt, row.UpdatedBy = chstore.WebhookSubscriberVersion(old, now), now, caller.Name
		if err := s.store.WriteWebhookSubscriber(ctx, row); err != nil {
			WriteError(w, http.StatusServiceUnavailable, "webhook "+name+" not changed: "+err.Error())
			return
		}
		s.subs[name] = row
		err := s.n.Update(notify.Subscriber{Name: row.Name, URL: row.URL, Kinds: row.Kinds, Secret: row.Secret})
		if err == nil {
			err = s.n.SetPaused(name, row.Paused)
		}
		if err != nil {
			writeNotifyError(w, name, err)
			return
		}
		if !s.audit(ctx, w, caller, action, row, old, detail) {
			return
		}
	}
	v, _ := s.current(name)
	if answer == nil {
		WriteJSON(w, http.StatusOK, v)
		return
	}
	WriteJSON(w, http.StatusOK, answer(v))
}

// managed returns an API subscriber's stored row, or answers 404, or 409
// for a config file subscriber; s.mu is held.
func (s *WebhookService) managed(w http.ResponseWriter, name string) (chstore.WebhookSubscriberRow, bool) {
	if s.config[name] {
		WriteError(w, http.StatusConflict, "webhook "+name+" comes from the config file (notify.webhooks); change it there")
		return chstore.WebhookSubscriberRow{}, false
	}
	row, ok := s.subs[name]
	if !ok {
		WriteError(w, http.StatusNotFound, "webhook "+name+": no such webhook")
	}
	return row, ok
}

// known answers 404 unless name is a subscriber (API or config).
func (s *WebhookService) known(w http.ResponseWriter, name string) bool {
	s.mu.Lock()
	_, ok := s.current(name)
	s.mu.Unlock()
	if !ok {
		WriteError(w, http.StatusNotFound, "webhook "+name+": no such webhook")
	}
	return ok
}

func (s *WebhookService) parked(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit, ok := limitParam(w, r, DefaultParkedList, MaxParkedList)
	if !ok || !s.known(w, name) {
		return
	}
	rows, err := s.store.WebhookDeadLetters(r.Context(), name, limit)
	if err != nil {
		WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	out := make([]ParkedView, 0, len(rows))
	for _, d := range rows {
		out = append(out, parkedView(d))
	}
	WriteJSON(w, http.StatusOK, struct {
		Parked []ParkedView `json:"parked"`
	}{out})
}

func parkedView(d chstore.WebhookDeadLetter) ParkedView {
	body := json.RawMessage(d.Body)
	if !json.Valid(body) {
		body, _ = json.Marshal(d.Body)
	}
	return ParkedView{ID: d.NotificationID, Kind: d.Kind, AccountID: d.AccountID, EventID: d.EventID, RuleID: d.RuleID,
		Attempts: d.Attempts, LastError: d.LastError, ParkedAt: d.ParkedAt.UTC(), Body: body}
}

// resendResult is the answer of the resend routes.
type resendResult struct {
	// Resent are the ids delivered (2xx) and marked resent.
	Resent []uint64 `json:"resent"`
	// Failed is the resend that did not succeed, which stopped the run; the
	// notification stays parked with one more attempt and its error.
	Failed *resendFailure `json:"failed,omitempty"`
}

type resendFailure struct {
	ID    uint64 `json:"id"`
	Error string `json:"error"`
}

func (s *WebhookService) resendOne(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		WriteError(w, http.StatusBadRequest, "id: "+strconv.Quote(r.PathValue("id"))+" is not a notification id (a decimal number)")
		return
	}
	if !s.known(w, name) {
		return
	}
	d, found, err := s.store.WebhookDeadLetter(r.Context(), name, id)
	switch {
	case err != nil:
		WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	case !found:
		WriteError(w, http.StatusNotFound, fmt.Sprintf("webhook %s: notification %d is not parked (or was resent)", name, id))
		return
	}
	s.resend(w, r, name, []chstore.WebhookDeadLetter{d})
}

func (s *WebhookService) resendAll(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit, ok := limitParam(w, r, MaxResendAll, MaxResendAll)
	if !ok || !s.known(w, name) {
		return
	}
	rows, err := s.store.WebhookDeadLetters(r.Context(), name, limit)
	if err != nil {
		WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	s.resend(w, r, name, rows)
}

// resend delivers parked notifications one by one, oldest first, with the
// subscriber's current URL and secret, marking each delivered one resent
// (so it is neither listed nor resent again). The first failure stops it:
// that notification stays parked, rewritten with one more attempt and the
// new error. One audit row records the run. 200 when all were resent, 502
// when one failed, 409 when paused or another resend is running.
func (s *WebhookService) resend(w http.ResponseWriter, r *http.Request, name string, rows []chstore.WebhookDeadLetter) {
	if !s.resending.TryLock() {
		WriteError(w, http.StatusConflict, "another resend is in progress; try again when it is done")
		return
	}
	defer s.resending.Unlock()
	caller, _ := CallerFrom(r.Context())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), webhookWriteTimeout)
	defer cancel()
	res := resendResult{Resent: []uint64{}}
	for _, d := range rows {
		if err := s.n.Resend(r.Context(), d); err != nil {
			if errors.Is(err, notify.ErrPaused) || errors.Is(err, notify.ErrNoSubscriber) || errors.Is(err, notify.ErrStopped) {
				if len(res.Resent) == 0 {
					writeNotifyError(w, name, err)
					return
				}
			}
			res.Failed = &resendFailure{ID: d.NotificationID, Error: err.Error()}
			d.Attempts++
			d.LastError = "resend: " + err.Error()
			if werr := s.store.WriteWebhookDeadLetter(ctx, d); werr != nil {
				res.Failed.Error += "; the parked row was not updated: " + werr.Error()
			}
			break
		}
		if err := s.store.MarkWebhookDeadLetterResent(ctx, d, s.now(), caller.Name); err != nil {
			// Delivered but not marked: it would be listed and could be
			// resent again; receivers de-duplicate by Riskd-Delivery.
			res.Failed = &resendFailure{ID: d.NotificationID, Error: "delivered, but not marked resent: " + err.Error()}
			break
		}
		res.Resent = append(res.Resent, d.NotificationID)
	}
	detail := fmt.Sprintf("resent %d", len(res.Resent))
	if len(res.Resent) > 0 {
		detail += fmt.Sprintf(" (ids %d..%d)", res.Resent[0], res.Resent[len(res.Resent)-1])
	}
	if res.Failed != nil {
		detail += fmt.Sprintf("; %d failed: %s", res.Failed.ID, res.Failed.Error)
	}
	err := s.store.WriteAudit(ctx, chstore.AuditRow{At: s.now(), Actor: caller.Name, Role: string(caller.Role),
		Action: "webhook.resend", Object: "webhook:" + name, Detail: detail})
	if err != nil {
		WriteError(w, http.StatusServiceUnavailable, "webhook "+name+": "+detail+", but the audit row is not stored: "+err.Error())
		return
	}
	status := http.StatusOK
	if res.Failed != nil {
		status = http.StatusBadGateway
	}
	WriteJSON(w, status, res)
}

// audit writes a change's audit row, or answers 503; never the secret.
func (s *WebhookService) audit(ctx context.Context, w http.ResponseWriter, caller Caller, action string,
	row chstore.WebhookSubscriberRow, old uint64, detail string) bool {
	oldVersion := ""
	if old != 0 {
		oldVersion = strconv.FormatUint(old, 10)
	}
	err := s.store.WriteAudit(ctx, chstore.AuditRow{At: row.UpdatedAt, Actor: caller.Name, Role: string(caller.Role),
		Action: action, Object: "webhook:" + row.Name, OldVersion: oldVersion,
		NewVersion: strconv.FormatUint(row.Version, 10), Detail: detail})
	if err != nil {
		WriteError(w, http.StatusServiceUnavailable, "webhook "+row.Name+": the change is made, but its audit row is not stored: "+err.Error())
		return false
	}
	return true
}

// validWebhook checks a subscriber as the notifier will, or answers 400.
func validWebhook(w http.ResponseWriter, row chstore.WebhookSubscriberRow) bool {
	err := notify.Config{Subscribers: []notify.Subscriber{{Name: row.Name, URL: row.URL, Kinds: row.Kinds, Secret: row.Secret}}}.Validate()
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), "notify.subscribers[0].", "")
		WriteError(w, http.StatusBadRequest, msg)
		return false
	}
	return true
}

func writeNotifyError(w http.ResponseWriter, name string, err error) {
	switch {
	case errors.Is(err, notify.ErrNoSubscriber):
		WriteError(w, http.StatusNotFound, "webhook "+name+": no such webhook")
	case errors.Is(err, notify.ErrSubscriberExists):
		WriteError(w, http.StatusConflict, "webhook "+name+" already exists")
	case errors.Is(err, notify.ErrPaused):
		WriteError(w, http.StatusConflict, "webhook "+name+" is paused; resume it first")
	case errors.Is(err, notify.ErrStopped):
		WriteError(w, http.StatusServiceUnavailable, "riskd is shutting down")
	default:
		WriteError(w, http.StatusBadRequest, err.Error())
	}
}

// limitParam reads ?limit= within [1, maxLimit], def when absent.
func limitParam(w http.ResponseWriter, r *http.Request, def, maxLimit int) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		WriteError(w, http.StatusBadRequest, fmt.Sprintf("limit: %q is not a number from 1 to %d", v, maxLimit))
		return 0, false
	}
	return n, true
}

// newSecret is 32 random bytes in hex.
func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate a webhook secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func describe(row chstore.WebhookSubscriberRow) string {
	d := "url " + row.URL + ", kinds " + kindsText(row.Kinds) + ", secret " + notify.Fingerprint([]byte(row.Secret))
	if row.Paused {
		d += ", paused"
	}
	return d
}

func kindsText(kinds []string) string {
	if len(kinds) == 0 {
		return "all"
	}
	return strings.Join(kinds, ",")
}
