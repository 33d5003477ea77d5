// Package streams connects the engine to Kafka: it reads the input topics
// with a consumer group, has every event decided by its account's shard,
// writes what the decisions produce, and commits offsets only behind what
// is durable.
//
// The contract, per message: consumer group -> engine -> output stage ->
// commit. Pipeline.Run reads each assigned partition in its own goroutine,
// takes an in-flight slot (Config.MaxInFlight; a reader waits while none
// is free, which is the backpressure on the broker) and submits the
// message to the engine. The engine's Done hands the result to the output
// stage, one goroutine that batches results (BatchSize, FlushInterval),
// publishes their Kafka outputs in order (decisions, alerts, lock commands
// on the actions topic, undecodable messages on the DLQ), passes alerts
// and locks to the Notifier, and writes the batch to the DecisionStore
// (ClickHouse, retried until it succeeds). An offset is committed only
// when every message up to it is durable on both sides, so a crash loses
// nothing: the replay publishes again with the same riskd-event-id header
// and the store collapses repeated rows.
//
// On shutdown Run stops fetching, waits up to DrainTimeout for in-flight
// messages, commits and returns; ErrNotDrained says the drain was cut short
// and the engine's state must not be checkpointed.
//
// Pipeline.Decide is the synchronous path of the decide API: an urgent
// message to the same shard, recorded through the same output stage, with
// no offset to commit. PublishAction writes a support lock or unlock.
//
//	p := streams.New(streams.Config{Brokers: brokers, Group: "riskd", Topics: streams.DefaultTopics(),
//		Notify: notifier}, eng, store, streams.NewMetrics(reg))
//	g.Go(func() error { return p.Run(ctx) }) // the engine runs until p.Run returns
//
// The subpackages are the other adapters: chstore (ClickHouse), notify
// (webhooks and the live alert stream) and rulesync (the published rule
// sets on risk.rules). StartEmbedded runs a Kafka-protocol broker in the
// process for the demo and tests.
package streams
