// Package notify delivers alerts and account lock/unlock commands to alert
// subscribers (the service that texts the wallet's user, case tools,
// consoles) as signed webhooks and as a live Server-Sent Events stream.
//
// The pipeline calls Publish once a batch is durable, one Notification per
// alert the engine let through and per lock or unlock. Publish never
// blocks: it gives the notification an id, keeps it in the stream's ring
// buffer, and puts it on each interested subscriber's bounded queue,
// dropping and counting it for a subscriber whose queue is full. Run owns
// the delivery workers. Notify does not throttle: repeats of an alert are
// held back once, in the engine (engine.Config.AlertThrottle, on event
// time), so webhooks, the stream, the alerts topic and the alerts table
// all carry the same alerts.
//
//	n := notify.New(notify.Config{
//		Subscribers: []notify.Subscriber{{Name: "sms", URL: "https://sms.internal/riskd", Secret: secret}},
//		DeadLetters: store, // *chstore.Store
//		Registerer:  reg,
//	})
//	g.Go(func() error { return n.Run(ctx) }) // errgroup; stops when ctx ends
//	mux.Handle("GET /v1/alerts/stream", auth(n.StreamHandler()))
//	n.Publish(notify.Notification{Kind: notify.KindAlert, AccountID: a.AccountID,
//		EventID: a.EventID, RuleID: a.RuleID, Body: alertJSON})
//
// # Webhooks
//
// Each delivery is a POST of Body with Content-Type application/json and:
//
//	Riskd-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//	Riskd-Delivery:  <notification id>  (the same on every retry: de-duplicate by it)
//	Riskd-Event:     alert | lock | unlock
//
// Delivery is at least once and in order per account: a subscriber's
// notifications are sharded by account over Config.Workers workers, and
// each worker finishes one notification (delivered or parked) before the
// next. A 2xx answer is success. 408, 429, 5xx, timeouts and connection
// errors are retried with exponential backoff and full jitter (honouring a
// Retry-After of 429 and 503), up to Config.MaxAttempts. Any other status
// (3xx, 4xx) is permanent: the receiver understood and refused, so it is not
// repeated. A notification that is refused or out of attempts is parked in
// the ClickHouse table webhook_dead_letters (through Config.DeadLetters)
// and the account's next notification proceeds.
//
// # Subscribers at run time
//
// Add, Update, SetPaused and Remove change the subscribers while the
// Notifier runs (api.WebhookService stores and audits them). Each
// subscriber's workers run under a context of their own: Remove cancels
// it, abandons the attempt in flight and what was queued (counted, not
// parked), and returns once the workers have ended. Update applies a new
// URL, kinds or secret from the next attempt. A paused subscriber's
// notifications are parked (LastError "paused: ...") in order, not held in
// memory, and Resend delivers a parked one on request with the current
// secret and its original id.
//
// # Verifying a delivery
//
// Receivers check every request before acting on it (Verify does this in
// Go; ExampleVerify shows it in a handler):
//
//	header   = request.header("Riskd-Signature")          # "t=1700000000,v1=9f86d0...,v1=..."
//	t        = value of the "t=" part;  sigs = values of every "v1=" part
//	if t is missing or sigs is empty: reject (400)
//	if abs(now_unix_seconds - int(t)) > 300: reject       # too old: a replay (or a broken clock)
//	body     = the raw request body bytes, before any JSON parsing
//	expected = hex(hmac_sha256(key = secret, message = t + "." + body))
//	if no s in sigs is equal to expected by a constant-time compare: reject (401)
//	accept; skip it if Riskd-Delivery was already processed (retries repeat it)
//	    (after a crash riskd may replay an event: also de-duplicate by kind + event_id + rule_id)
//	answer 2xx quickly; 4xx only for requests that must never be sent again
//
// Several v1= values may appear while a secret is being rotated; one match
// is enough.
//
// # Live stream
//
// StreamHandler serves GET /v1/alerts/stream: "id: <notification id>",
// "event: <kind>", "data: <body>" per notification, with Last-Event-ID
// resumption from a ring buffer, an ?account= filter and heartbeat
// comments. Slow clients are disconnected, never waited for.
//
// # Metrics
//
// riskd_webhook_deliveries_total{subscriber,outcome} (delivered, retried,
// parked, dropped_overflow, abandoned),
// riskd_webhook_delivery_seconds{subscriber} (Publish to 2xx, retries
// included), riskd_alert_stream_clients and
// riskd_alert_stream_dropped_total, registered on Config.Registerer.
package notify
