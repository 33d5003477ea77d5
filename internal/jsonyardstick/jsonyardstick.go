// Package jsonyardstick exists only for benchmarks: it mirrors the riskd wire
// event as a plain encoding/json struct. With it a benchmark times
// encoding/json (or a drop-in such as goccy/go-json) decoding the same
// message the riskd decoder reads, and reports the riskd path against that
// yardstick. Nothing but tests and benchmarks may import it.
//
//	var ev jsonyardstick.Event
//	err := json.Unmarshal(raw, &ev)
package jsonyardstick

// Event mirrors every field of the wire format of event.Event (see
// event.Decoder) as a plain encoding/json struct. It does not import
// riskd/event, so event's own tests can use it. Reset it to the zero value
// before each Unmarshal, as the riskd decoder resets its Event.
type Event struct {
	EventID    string `json:"event_id"`
	Type       string `json:"type"`
	TS         int64  `json:"ts"`
	AccountID  string `json:"account_id"`
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
	Channel    string `json:"channel"`
	MerchantID string `json:"merchant_id"`
	MCC        string `json:"mcc"`
	PayeeID    string `json:"payee_id"`
	CardID     string `json:"card_id"`
	Device     struct {
		ID         string `json:"id"`
		OS         string `json:"os"`
		AppVersion string `json:"app_version"`
		Rooted     bool   `json:"rooted"`
		Emulator   bool   `json:"emulator"`
	} `json:"device"`
	IP  string `json:"ip"`
	Geo struct {
		Country string  `json:"country"`
		Lat     float64 `json:"lat"`
		Lon     float64 `json:"lon"`
	} `json:"geo"`
	Attrs map[string]any `json:"attrs"`
	Label string         `json:"label"`
}
