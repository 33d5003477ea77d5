package chstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// The decisions table's array columns (matched rules, feature names and
// values, ...) are filled by decoding them from ClickHouse's Native
// format, which this file writes, instead of through the driver's
// Append. The driver appends an array row by reflection and boxes every
// element into an interface: with twenty features that was some forty
// allocations per decision, and its reflection and growth were most of
// the cost of building the table's columns. A column decoded from bytes
// gets its offsets and values in one piece each.
//
// The Native layout of an Array(T) column of n rows is n little-endian
// UInt64 offsets, each the number of elements up to and including its
// row, then the elements of all rows in order as column T lays them out:
// a String as its length in unsigned LEB128 and its bytes, a Float64 as
// its IEEE 754 bits in little-endian order.

// Array column types appendNativeArrays knows how to write.
const (
	stringArrayType = "Array(String)"
	floatArrayType  = "Array(Float64)"
)

// nativeDecoder decodes columns from bytes it is given. A proto.Reader
// buffers its source in 128 KiB, more than most columns it reads, so
// decoders are pooled rather than made per column. A column decodes
// exactly the bytes its rows take, which are all the bytes given, so the
// buffer is empty again after each success; after a failure the decoder
// is dropped, not pooled.
type nativeDecoder struct {
	src bytes.Reader
	r   *proto.Reader
	buf []byte // the encoding buffer, kept for the next column
}

var nativeDecoders = sync.Pool{New: func() any {
	d := new(nativeDecoder)
	d.r = proto.NewReader(&d.src)
	return d
}}

// decode fills c, which must be empty, with rows rows from data. The
// caller pools d again only when it succeeds.
func (d *nativeDecoder) decode(c column.Interface, data []byte, rows int) error {
	d.src.Reset(data)
	if err := c.Decode(d.r, rows); err != nil {
		c.Reset()
		return fmt.Errorf("decode %d rows of %s: %w", rows, c.Type(), err)
	}
	return nil
}

// appendNativeArrays fills c, an empty column of the batch, with rows,
// which is [][]string for an Array(String) column or [][]float64 for an
// Array(Float64) one. It reports false, having done nothing, when c is
// not empty or rows is not a type it writes for c's type: the caller
// appends them the driver's way then.
func appendNativeArrays(c column.Interface, rows any) (bool, error) {
	if c.Rows() != 0 {
		return false, nil
	}
	d := nativeDecoders.Get().(*nativeDecoder)
	var n int
	switch v := rows.(type) {
	case [][]string:
		if c.Type() == stringArrayType {
			n, d.buf = len(v), encodeStringArrays(d.buf[:0], v)
		}
	case [][]float64:
		if c.Type() == floatArrayType {
			n, d.buf = len(v), encodeFloatArrays(d.buf[:0], v)
		}
	}
	if n == 0 {
		nativeDecoders.Put(d)
		return false, nil // not a column written here, or no rows: the driver's way
	}
	if err := d.decode(c, d.buf, n); err != nil {
		return false, err
	}
	nativeDecoders.Put(d)
	return true, nil
}

// encodeStringArrays appends rows to buf as an Array(String) column.
func encodeStringArrays(buf []byte, rows [][]string) []byte {
	buf = appendArrayOffsets(buf, rows)
	for _, row := range rows {
		for _, s := range row {
			buf = binary.AppendUvarint(buf, uint64(len(s)))
			buf = append(buf, s...)
		}
	}
	return buf
}

// encodeFloatArrays appends rows to buf as an Array(Float64) column.
func encodeFloatArrays(buf []byte, rows [][]float64) []byte {
	buf = appendArrayOffsets(buf, rows)
	for _, row := range rows {
		for _, f := range row {
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(f))
		}
	}
	return buf
}

// appendArrayOffsets appends the offsets of an array column of rows.
func appendArrayOffsets[T any](buf []byte, rows [][]T) []byte {
	var end uint64
	for _, row := range rows {
		end += uint64(len(row))
		buf = binary.LittleEndian.AppendUint64(buf, end)
	}
	return buf
}
