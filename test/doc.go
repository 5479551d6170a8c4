// Package test holds llmgate's black-box end-to-end tests. TestMain builds the llmgate and
// llmsim binaries once; each test then starts the processes it needs on loopback (port 0),
// drives them over real sockets with the official OpenAI Go SDK or raw net/http, and reads
// their stderr, llmsim's /sim endpoints and llmgate's /metrics to check what happened.
//
// Concurrency: tests run in parallel. A process whose state a test inspects (llmsim's
// counters, llmgate's metrics and log) belongs to that test alone; the one shared llmsim is
// only ever asked about requests by the X-Request-Id that the test sent. Every process is
// killed and reaped in t.Cleanup (the shared one after the last test), and every goroutine a
// helper starts is waited for, which goleak checks in TestMain.
//
// The package imports no project package: it sees llmgate only as a user would.
package test
