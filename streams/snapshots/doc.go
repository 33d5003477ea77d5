// Package snapshots keeps engine state snapshots, with the input offsets
// they reflect, in a compacted Kafka topic, so that a riskd killed without
// a clean shutdown starts from its last snapshot and replays its inputs
// from there.
//
// Each Name (a consumer group; several can share a topic) has two slots,
// Seq % 2, so the previous snapshot stays whole while the next is written.
// A snapshot is chunks under "<Name>/<slot>/<index>", each at most
// MaxRecordBytes with a header (magic, format version, Seq, a random save
// ID, index, and a CRC-32C of header and payload), then, once every chunk
// is acknowledged by all in-sync replicas, a JSON manifest under
// "<Name>/<slot>/manifest": Seq, save ID, chunk count and size, length,
// SHA-256 of the data, Offsets, Meta, CreatedAt, wrapped with a CRC-32C of
// its own bytes. The topic has one partition, and compaction keeps the
// newest value per key, which is all Load reads.
//
// The guarantee: Load returns a snapshot only if its manifest is sound and
// every chunk it names is present, of the same Seq and save, in place, of
// the right length, passes its checksum, and the data's SHA-256 matches.
// A crash mid-save, a damaged record, or a chunk left behind by an older
// or longer snapshot makes Load fall back to the older slot and say why in
// LoadStats.Refused; never is a corrupt or incomplete snapshot used.
//
//	st, _ := snapshots.New(snapshots.Config{Brokers: brokers, Topic: "riskd.state", Name: group})
//	snap, stats, err := st.Load(ctx)      // errors.Is(err, snapshots.ErrNoSnapshot): start empty
//	...
//	_, err = st.Save(ctx, snapshots.Snapshot{Seq: snap.Seq + 1, Offsets: offs, Meta: meta, Data: state})
package snapshots
