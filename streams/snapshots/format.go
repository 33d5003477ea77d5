package snapshots

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"time"
)

// formatVersion is the version of the chunk header and of the manifest. A
// reader refuses a higher one rather than guessing at it.
const formatVersion = 1

// Chunk header, big-endian, in front of every chunk's payload:
//
//	0  magic "RKSC" (riskd snapshot chunk)
//	4  format version (1 byte)
//	5  Seq (8 bytes)
//	13 save ID (8 bytes): random per Save, so two saves of one Seq differ
//	21 chunk index (4 bytes)
//	25 CRC-32C (Castagnoli) of bytes 0..24 and the payload
//	29 payload
//
// The checksum covers the header too, so a damaged Seq or index is caught
// as damage instead of being believed.
const (
	chunkMagic     = "RKSC"
	chunkHeaderLen = 29
	crcCovered     = 25 // header bytes the checksum covers
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// chunkHeader is a chunk's header, decoded.
type chunkHeader struct {
	seq    uint64
	saveID uint64
	index  uint32
	crc    uint32
}

// appendChunkHeader appends the header of a chunk holding payload.
func appendChunkHeader(dst []byte, seq, saveID uint64, index uint32, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, chunkMagic...)
	dst = append(dst, formatVersion)
	dst = binary.BigEndian.AppendUint64(dst, seq)
	dst = binary.BigEndian.AppendUint64(dst, saveID)
	dst = binary.BigEndian.AppendUint32(dst, index)
	crc := crc32.Update(crc32.Checksum(dst[start:], castagnoli), castagnoli, payload)
	return binary.BigEndian.AppendUint32(dst, crc)
}

// appendChunk appends a whole chunk record value: header and payload.
func appendChunk(dst []byte, seq, saveID uint64, index uint32, payload []byte) []byte {
	return append(appendChunkHeader(dst, seq, saveID, index, payload), payload...)
}

// Reasons a chunk is not what it should be. They end up in Load's
// refusals, after "snapshot N: chunk I: ".
var (
	errChecksum = errors.New("checksum mismatch")
	errNotChunk = errors.New("not a snapshot chunk (bad magic)")
)

// parseChunkHeader decodes the header at the start of b (at least the
// header; the payload need not be there). It checks the magic and version,
// not the checksum.
func parseChunkHeader(b []byte) (chunkHeader, error) {
	if len(b) < chunkHeaderLen {
		return chunkHeader{}, fmt.Errorf("%d bytes, too short for a chunk header", len(b))
	}
	if string(b[:4]) != chunkMagic {
		return chunkHeader{}, errNotChunk
	}
	if b[4] != formatVersion {
		return chunkHeader{}, fmt.Errorf("chunk format %d not supported (this build reads %d)", b[4], formatVersion)
	}
	return chunkHeader{
		seq:    binary.BigEndian.Uint64(b[5:]),
		saveID: binary.BigEndian.Uint64(b[13:]),
		index:  binary.BigEndian.Uint32(b[21:]),
		crc:    binary.BigEndian.Uint32(b[25:]),
	}, nil
}

// Keys. "<Name>/<slot>/<index>" holds chunk index of the snapshot in slot
// (0 or 1, Seq % 2), "<Name>/<slot>/manifest" its manifest. Exactly two
// segments follow the Name, so a Name that extends another with "/..."
// never has its keys read as the other's.
const manifestKeyword = "manifest"

func chunkKey(name string, slot, index int) string {
	return name + "/" + strconv.Itoa(slot) + "/" + strconv.Itoa(index)
}

func manifestKey(name string, slot int) string {
	return name + "/" + strconv.Itoa(slot) + "/" + manifestKeyword
}

// parseKey reads a key of name: ok is false for any other key. index is -1
// for the manifest. Indexes are canonical decimals ("07" is not ours), so
// one chunk has one key.
func parseKey(name string, key []byte) (slot, index int, ok bool) {
	rest, found := bytes.CutPrefix(key, []byte(name+"/"))
	if !found || len(rest) < 3 || rest[1] != '/' || (rest[0] != '0' && rest[0] != '1') {
		return 0, 0, false
	}
	slot, tail := int(rest[0]-'0'), string(rest[2:])
	if tail == manifestKeyword {
		return slot, -1, true
	}
	i, err := strconv.Atoi(tail)
	if err != nil || i < 0 || strconv.Itoa(i) != tail {
		return 0, 0, false
	}
	return slot, i, true
}

// manifest describes one complete snapshot. It is written after every
// chunk is acknowledged, so its presence means the chunks were written;
// Load still checks each of them.
type manifest struct {
	Format int    `json:"format"`
	Name   string `json:"name"`
	Seq    uint64 `json:"seq"`
	// SaveID is the chunks' save ID, 16 hex digits.
	SaveID string `json:"save_id"`
	// Chunks is the number of chunks; each but the last holds ChunkBytes
	// of Data, the last the rest.
	Chunks     int    `json:"chunks"`
	ChunkBytes int    `json:"chunk_bytes"`
	Length     int64  `json:"length"`
	SHA256     string `json:"sha256"` // of Data, hex
	// Offsets, SharedOffsets and Meta are the snapshot's, as given.
	Offsets       map[string]map[int]int64 `json:"offsets"`
	SharedOffsets map[string]map[int]int64 `json:"shared_offsets,omitempty"`
	Meta          map[string]string        `json:"meta"`
	CreatedAt     time.Time                `json:"created_at"`
}

// The manifest record value is {"crc32c":N,"manifest":{...}}: N is the
// CRC-32C of the manifest object's exact bytes, so readers check what was
// written rather than a re-encoding of it.
const (
	envelopeHead = `{"crc32c":`
	envelopeMid  = `,"manifest":`
)

type envelope struct {
	CRC32C   *uint32         `json:"crc32c"`
	Manifest json.RawMessage `json:"manifest"`
}

func encodeManifest(m manifest) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	out := make([]byte, 0, len(body)+40)
	out = append(out, envelopeHead...)
	out = strconv.AppendUint(out, uint64(crc32.Checksum(body, castagnoli)), 10)
	out = append(out, envelopeMid...)
	out = append(out, body...)
	return append(out, '}'), nil
}

// decodeManifest decodes and checks a manifest record value of name. The
// errors are refusal reasons, after "slot S: manifest: ".
func decodeManifest(name string, value []byte) (manifest, error) {
	var env envelope
	if err := json.Unmarshal(value, &env); err != nil {
		return manifest{}, fmt.Errorf("undecodable: %w", err)
	}
	if env.CRC32C == nil || len(env.Manifest) == 0 {
		return manifest{}, errors.New("not a snapshot manifest (no crc32c or manifest field)")
	}
	if crc32.Checksum(env.Manifest, castagnoli) != *env.CRC32C {
		return manifest{}, errChecksum
	}
	var m manifest
	if err := json.Unmarshal(env.Manifest, &m); err != nil {
		return manifest{}, fmt.Errorf("undecodable: %w", err)
	}
	if m.Format != formatVersion {
		return manifest{}, fmt.Errorf("format %d not supported (this build reads %d)", m.Format, formatVersion)
	}
	if m.Name != name {
		return manifest{}, fmt.Errorf("written for name %q", m.Name)
	}
	if _, err := parseSaveID(m.SaveID); err != nil {
		return manifest{}, err
	}
	if sum, err := hex.DecodeString(m.SHA256); err != nil || len(sum) != 32 {
		return manifest{}, fmt.Errorf("sha256 %q is not 64 hex digits", m.SHA256)
	}
	if m.Length < 0 || m.ChunkBytes <= 0 || m.Chunks != chunkCount(m.Length, m.ChunkBytes) {
		return manifest{}, fmt.Errorf("length %d in %d chunks of %d bytes does not add up", m.Length, m.Chunks, m.ChunkBytes)
	}
	return m, nil
}

func formatSaveID(id uint64) string { return fmt.Sprintf("%016x", id) }

func parseSaveID(s string) (uint64, error) {
	if len(s) != 16 || strings.ToLower(s) != s {
		return 0, fmt.Errorf("save_id %q is not 16 hex digits", s)
	}
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("save_id %q is not 16 hex digits", s)
	}
	return id, nil
}

// chunkCount is how many chunks of chunkBytes hold length bytes.
func chunkCount(length int64, chunkBytes int) int {
	return int((length + int64(chunkBytes) - 1) / int64(chunkBytes))
}

// chunkLen is the payload length of chunk i of m.
func (m manifest) chunkLen(i int) int {
	if i < m.Chunks-1 {
		return m.ChunkBytes
	}
	return int(m.Length - int64(m.Chunks-1)*int64(m.ChunkBytes))
}
