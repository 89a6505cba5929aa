package skiff

// SetWALSegmentSize sets raft-wal's segment size for log stores opened
// from now on and returns a function that restores the previous size.
// Tests that use it must not run in parallel with others.
func SetWALSegmentSize(size int) (restore func()) {
	old := walSegmentSize
	walSegmentSize = size
	return func() { walSegmentSize = old }
}

// ErrorFromStatus converts a gRPC error the way the client does.
func ErrorFromStatus(err error) error { return fromStatus(err) }
