//go:build !unix

package dirlock

import "os"

// lockFile is a no-op where flock is unavailable; the log stores' own
// locks still guard against most misuse.
func lockFile(*os.File) error { return nil }
