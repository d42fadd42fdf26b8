// Package clamd is the engine that scans samples with ClamAV's clamd,
// speaking clamd's protocol itself: zINSTREAM for scans, PING, VERSION,
// VERSIONCOMMANDS and RELOAD, all on the NUL-terminated "z" forms.
//
// Why not a client library: the popular Go one leaks a goroutine per scan
// and, like several peers, reads some failures as "no virus". Here every
// reply goes through ParseReply, which only ever yields clean for the exact
// "stream: OK" reply.
//
// An Engine talks to one or more clamd addresses. It spreads scans over
// them (least loaded first, round-robin among equals), fails over when one
// refuses connections, backs a failing address off exponentially, and
// still fails closed when every address is down. Connections are kept
// open between scans in clamd IDSESSION mode, because that measured
// faster than a connection per scan (see BenchmarkScan and bench/clamd).
//
// The engine's version is clamd's VERSION reply, plus a digest of the
// signature folder when one is configured (clamd's reply does not change
// with custom signatures); when that folder changes the engine sends RELOAD
// to every address. See Engine.Version.
package clamd
