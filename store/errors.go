package store

import "errors"

var (
	// ErrCorrupt is returned, wrapped with detail, by ReadView when the input
	// is not a complete, intact snapshot: bad magic, unknown format version,
	// truncation, checksum mismatch, malformed or out-of-order entries.
	ErrCorrupt = errors.New("store: corrupt snapshot")
)
