package event

// Seams for the external tests that compare the fast path with fastjson.
var (
	DecodeFull = (*Decoder).decodeFull
	FastDecode = (*Decoder).fastDecode
	TSFastjson = (*TSPeeker).tsFastjson
)
