// Package otlptest is a test-only helper: an in-process OTLP trace receiver that listens on
// loopback, speaks OTLP/gRPC and OTLP/HTTP (protobuf, or JSON; gzip or not), and keeps every
// span it receives, flattened with its resource's attributes, for tests to inspect.
//
// Concurrency: a Receiver is safe for concurrent use. Start runs one goroutine per listener
// (gRPC and HTTP); t's cleanup stops both servers and waits for the goroutines to exit.
//
// Imports: no other package of this project. Never import it outside tests.
package otlptest
