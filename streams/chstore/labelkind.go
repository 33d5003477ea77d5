package chstore

// Labels say what an event really was. The labels table holds one label
// per event (the latest wins: ReplacingMergeTree on labelled_at): the
// traffic generator's scenario name ("ato", "card_testing", ...) carried by
// the event itself, or an analyst's verdict. LabelNotFraud marks a
// legitimate event (a false positive confirmed); every other non-empty
// label is fraud, named by its scenario or just LabelFraud. An event with
// no label is unlabelled: legitimate in generated traffic, unknown in real
// traffic, and reports keep it apart from LabelNotFraud.
const (
	LabelFraud    = "fraud"
	LabelNotFraud = "not_fraud"
)

// LabelIsFraud reports whether a stored label marks fraud.
func LabelIsFraud(label string) bool { return label != "" && label != LabelNotFraud }
