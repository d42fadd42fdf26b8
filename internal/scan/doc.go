// Package scan is lazaret's domain: samples, engines, findings, verdicts and
// jobs. It imports no driver; engines, stores and intakes depend on it.
//
// The one rule every other package relies on: a verdict is Clean only when
// every configured engine scanned the whole sample and found nothing. Any
// failure (engine error, timeout, size limit, a reply that cannot be parsed)
// yields a verdict that is not Clean. See Combine.
package scan
