// Package testenv gives tests the real services they run against: a clamd
// with the project's test signatures, PostgreSQL, and the samples those
// signatures detect. Addresses come from environment variables; where one
// is missing, a test is skipped on a developer's machine and fails when CI
// is set, so that CI cannot pass by skipping.
//
// It is imported only by tests.
package testenv

import (
	"os"
	"testing"
)

// Environment variables naming the services.
const (
	EnvClamd    = "LAZARET_TEST_CLAMD"    // tcp://127.0.0.1:3310 or unix:///path
	EnvPostgres = "LAZARET_TEST_POSTGRES" // postgres://user@127.0.0.1:55432/postgres?sslmode=disable
)

// InCI reports whether the tests run under CI, where every service is
// required.
func InCI() bool { return os.Getenv("CI") != "" }

// Require skips the test (or fails it under CI) because what is missing.
func Require(t testing.TB, what string) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI is set but %s is not available", what)
	}
	t.Skipf("%s is not available; set it up to run this test (see README)", what)
}

// fromEnv returns the address in an environment variable, or skips (or
// fails, under CI) naming the service.
func fromEnv(t testing.TB, name, service string) string {
	t.Helper()
	u := os.Getenv(name)
	if u == "" {
		Require(t, service+" ($"+name+")")
	}
	return u
}

// Postgres returns the PostgreSQL URL from LAZARET_TEST_POSTGRES.
func Postgres(t testing.TB) string { t.Helper(); return fromEnv(t, EnvPostgres, "PostgreSQL") }

// EnvAMQP names a RabbitMQ for tests: amqp://user:pass@127.0.0.1:5672/.
const EnvAMQP = "LAZARET_TEST_AMQP"

// AMQP returns the RabbitMQ URL from LAZARET_TEST_AMQP.
func AMQP(t testing.TB) string { t.Helper(); return fromEnv(t, EnvAMQP, "RabbitMQ") }

// EnvNATS names a NATS server with JetStream for tests: nats://127.0.0.1:4222.
const EnvNATS = "LAZARET_TEST_NATS"

// NATS returns the NATS URL from LAZARET_TEST_NATS.
func NATS(t testing.TB) string { t.Helper(); return fromEnv(t, EnvNATS, "NATS with JetStream") }
