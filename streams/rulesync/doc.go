// Package rulesync carries published rule sets to every riskd instance
// through Kafka.
//
// A published set is one Record on a compacted topic (DefaultTopic,
// cleanup.policy=compact, one partition) under the key "ruleset", so the
// topic always holds at least the latest version and a new instance starts
// from it. Every instance runs Follow, which reads the topic from the
// beginning and then live and hands each record to an apply function that
// compiles and installs it; the publishing instance installs its own
// publish the same way, so the whole fleet switches by one path.
//
// Latest reads the newest record alone, for an instance deciding at start
// whether its rule directory is already published; PublishIfChanged
// publishes unless the newest record has the same files, so instances
// starting together from one directory publish it once. A record says
// where it came from (Source) and carries the hash of the newest set
// published from a directory (DirHash).
//
// A record's Seq is assigned by the topic: it is the record's offset plus
// one. Two instances publishing at the same moment therefore never share a
// seq, and the order every instance installs in is the topic's order.
//
//	s, _ := rulesync.New(rulesync.Config{Brokers: brokers})
//	go s.Follow(ctx, func(r rulesync.Record) error { return install(r) })
//	seq, err := s.Publish(ctx, rulesync.Record{Hash: h, Files: files, Author: "alice"})
package rulesync
