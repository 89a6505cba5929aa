package boltcheck

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
)

// bigDB writes a raft.db-like file of about 50 MB: 48,000 log entries of
// 1,000 bytes in 500-entry transactions, the first half deleted again as
// a snapshot would truncate the log.
func bigDB(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "raft.db")
	opts := *skiffOptions
	opts.NoSync = true
	db, err := bbolt.Open(path, 0o600, &opts)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	val := make([]byte, 1000)
	key := func(i int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }
	for i := 0; i < 48000; i += 500 {
		err := db.Update(func(tx *bbolt.Tx) error {
			logs, err := tx.CreateBucketIfNotExists([]byte("logs"))
			if err != nil {
				return err
			}
			for j := i; j < i+500; j++ {
				if err := logs.Put(key(j), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		logs := tx.Bucket([]byte("logs"))
		for i := 0; i < 24000; i++ {
			if err := logs.Delete(key(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkCheck50MB compares Check with the bbolt.Open it precedes.
func BenchmarkCheck50MB(b *testing.B) {
	path := bigDB(b)
	if st, err := os.Stat(path); err == nil {
		b.Logf("file size %d MB", st.Size()>>20)
	}
	b.Run("Check", func(b *testing.B) {
		for b.Loop() {
			if err := Check(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bbolt.Open", func(b *testing.B) {
		for b.Loop() {
			db, err := bbolt.Open(path, 0o600, skiffOptions)
			if err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
	})
}
