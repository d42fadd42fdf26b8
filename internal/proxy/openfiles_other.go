//go:build !unix

package proxy

// openFilesLimit is unknown here.
func openFilesLimit() int { return 0 }
