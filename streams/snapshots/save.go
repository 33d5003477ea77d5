package snapshots

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// inFlight is how many chunk produces a Save keeps in flight: enough to
// overlap round trips to the broker, few enough that the value buffers
// (one record each) stay a few MB.
const inFlight = 4

// tombstonesPerRequest bounds one produce of stale-chunk tombstones (each
// a key of at most maxKeyBytes), well under the record size limit.
const tombstonesPerRequest = 1000

// Save writes snap to slot snap.Seq % 2: its chunks first, then, once every
// chunk is acknowledged by all in-sync replicas, its manifest. It returns
// an error if any record was not acknowledged; the snapshot in the other
// slot is then untouched, and the caller retries with the same Seq.
//
// Once the Store knows the newest complete snapshot (after a Load, or a
// Save of its own), Save refuses a Seq that is not above it or that would
// overwrite its slot: Load returns the highest complete Seq, so a lower
// one would be silently ignored, and overwriting the newest one's slot
// would leave nothing to fall back on if this Save failed.
//
// After the manifest, Save tombstones chunk keys of the slot beyond this
// snapshot's end that this Store has seen (left by a longer snapshot
// before), so the topic shrinks with the state. A failure there is logged,
// not returned: the snapshot is saved.
func (s *Store) Save(ctx context.Context, snap Snapshot) (SaveStats, error) {
	start := time.Now()
	var st SaveStats
	fail := func(err error) (SaveStats, error) {
		st.Duration = time.Since(start)
		return st, fmt.Errorf("snapshots: save snapshot %d of %s to %s: %w", snap.Seq, s.cfg.Name, s.cfg.Topic, err)
	}
	if err := validateSnapshot(snap); err != nil {
		return fail(err)
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	if err := s.checkSeq(snap.Seq); err != nil {
		return fail(err)
	}
	if snap.CreatedAt.IsZero() {
		snap.CreatedAt = start
	}
	slot := int(snap.Seq % 2)
	chunkBytes := s.cfg.MaxRecordBytes - chunkHeaderLen
	n := chunkCount(int64(len(snap.Data)), chunkBytes)
	if uint64(n) > math.MaxUint32 {
		return fail(fmt.Errorf("%d bytes of data need %d chunks, more than a chunk index holds", len(snap.Data), n))
	}
	saveID := rand.Uint64()
	m := manifest{
		Format: formatVersion, Name: s.cfg.Name, Seq: snap.Seq, SaveID: formatSaveID(saveID),
		Chunks: n, ChunkBytes: chunkBytes, Length: int64(len(snap.Data)), SHA256: hex.EncodeToString(make([]byte, sha256.Size)),
		Offsets: snap.Offsets, SharedOffsets: snap.SharedOffsets, Meta: snap.Meta, CreatedAt: snap.CreatedAt,
	}
	// The manifest's size does not depend on the hash: check that it fits
	// before writing anything.
	if probe, err := encodeManifest(m); err != nil {
		return fail(err)
	} else if len(probe) > s.cfg.MaxRecordBytes {
		return fail(fmt.Errorf("the manifest (Offsets and Meta) is %d bytes, over MaxRecordBytes %d", len(probe), s.cfg.MaxRecordBytes))
	}

	if !s.ensured.Load() {
		if err := s.Ensure(ctx); err != nil {
			return fail(err)
		}
	}
	client, done := s.client()
	defer done()

	s.mu.Lock()
	s.chunkKeys[slot] = max(s.chunkKeys[slot], n) // a failed Save may leave any of them
	s.mu.Unlock()
	sum, err := s.writeChunks(ctx, client, &st, slot, snap, saveID, chunkBytes, n)
	if err != nil {
		return fail(err)
	}
	m.SHA256 = hex.EncodeToString(sum)
	value, err := encodeManifest(m)
	if err != nil {
		return fail(err)
	}
	key := manifestKey(s.cfg.Name, slot)
	if err := s.produce(ctx, client, kafka.Record{Key: kafka.NewBytes([]byte(key)), Value: kafka.NewBytes(value)}); err != nil {
		return fail(fmt.Errorf("manifest: %w", err))
	}
	st.Records++
	st.Bytes += int64(len(key) + len(value))

	s.mu.Lock()
	s.newest, s.newestKnown = snap.Seq, true
	stale := s.chunkKeys[slot]
	s.mu.Unlock()
	if stale > n {
		if err := s.dropChunks(ctx, client, &st, slot, n, stale); err != nil {
			s.log.Warn("snapshots: saved, but tombstoning stale chunks failed; they stay in the topic until a later save clears them",
				"seq", snap.Seq, "slot", slot, "chunks", fmt.Sprintf("%d..%d", n, stale-1), "err", err)
		} else {
			s.mu.Lock()
			s.chunkKeys[slot] = n
			s.mu.Unlock()
		}
	}
	st.Duration = time.Since(start)
	s.log.Debug("snapshots: saved", "seq", snap.Seq, "slot", slot, "chunks", n, "bytes", st.Bytes, "duration", st.Duration)
	return st, nil
}

// validateSnapshot refuses what could not be loaded back meaningfully.
// Offsets are carried as given: callers use negative sentinels
// (kafka.FirstOffset for a partition nothing was read from).
func validateSnapshot(snap Snapshot) error {
	if snap.Seq == 0 {
		return errors.New("Seq 0: Seq starts at 1 (the previous Seq + 1)")
	}
	return nil
}

// checkSeq refuses a Seq that would hide behind or overwrite the newest
// complete snapshot this Store knows of.
func (s *Store) checkSeq(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.newestKnown || s.newest == 0 {
		return nil
	}
	switch {
	case seq <= s.newest:
		return fmt.Errorf("Seq %d is not above %d, the newest complete snapshot; Load would keep returning that one (save %d)",
			seq, s.newest, s.newest+1)
	case seq%2 == s.newest%2:
		return fmt.Errorf("Seq %d would overwrite the slot of snapshot %d, the newest complete one, leaving nothing to fall back on (save %d)",
			seq, s.newest, s.newest+1)
	}
	return nil
}

// writeChunks produces the n chunks of snap, up to inFlight at a time, and
// returns the SHA-256 of the data once every one is acknowledged. The
// first failure cancels the rest.
func (s *Store) writeChunks(ctx context.Context, client *kafka.Client, st *SaveStats, slot int, snap Snapshot, saveID uint64, chunkBytes, n int) ([]byte, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hash := sha256.New()
	free := make(chan []byte, inFlight) // value buffers, allocated on first use
	for range inFlight {
		free <- nil
	}
	var (
		wg              sync.WaitGroup
		records, nbytes atomic.Int64
	)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		payload := snap.Data[i*chunkBytes : min((i+1)*chunkBytes, len(snap.Data))]
		hash.Write(payload)
		var buf []byte
		select {
		case buf = <-free:
		case <-ctx.Done():
			continue // the loop ends on ctx.Err
		}
		buf = appendChunk(buf[:0], snap.Seq, saveID, uint32(i), payload)
		key := []byte(chunkKey(s.cfg.Name, slot, i))
		wg.Go(func() {
			defer func() { free <- buf }()
			if err := s.produce(ctx, client, kafka.Record{Key: kafka.NewBytes(key), Value: kafka.NewBytes(buf)}); err != nil {
				cancel(fmt.Errorf("chunk %d of %d: %w", i, n, err))
				return
			}
			records.Add(1)
			nbytes.Add(int64(len(key) + len(buf)))
		})
	}
	wg.Wait()
	st.Records += int(records.Load())
	st.Bytes += nbytes.Load()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return hash.Sum(nil), nil
}

// dropChunks tombstones chunk keys from..to-1 of slot.
func (s *Store) dropChunks(ctx context.Context, client *kafka.Client, st *SaveStats, slot, from, to int) error {
	for lo := from; lo < to; lo += tombstonesPerRequest {
		hi := min(lo+tombstonesPerRequest, to)
		recs := make([]kafka.Record, 0, hi-lo)
		var nbytes int64
		for i := lo; i < hi; i++ {
			key := chunkKey(s.cfg.Name, slot, i)
			recs = append(recs, kafka.Record{Key: kafka.NewBytes([]byte(key))})
			nbytes += int64(len(key))
		}
		if err := s.produce(ctx, client, recs...); err != nil {
			return fmt.Errorf("tombstones for chunks %d..%d: %w", lo, hi-1, err)
		}
		st.Records += len(recs)
		st.Bytes += nbytes
	}
	return nil
}
