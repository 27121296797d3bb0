package storage

import (
	"os"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkArchiveLayout logs where the archive's bytes go: per key kind
// (e entries, t words, w with), the page fill, the file.
func BenchmarkArchiveLayout(b *testing.B) {
	f := openArchiveFixture(b)
	for b.Loop() {
	}
	_ = f.db.bolt.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(logPrefix + "archive"))
		st := bk.Stats()
		b.Logf("keys %d leafpages %d leafalloc %d leafinuse %d (%.0f%%) branchalloc %d depth %d", st.KeyN, st.LeafPageN, st.LeafAlloc, st.LeafInuse, 100*float64(st.LeafInuse)/float64(st.LeafAlloc), st.BranchAlloc, st.Depth)
		sums := map[byte][3]int{}
		c := bk.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			i := 0
			for k[i] != 0 {
				i++
			}
			s := sums[k[i+1]]
			s[0]++
			s[1] += len(k)
			s[2] += len(v)
			sums[k[i+1]] = s
		}
		for kind, s := range sums {
			b.Logf("%c: n %d keybytes %d valbytes %d per msg %.1f (+16/key: %.1f)", kind, s[0], s[1], s[2], float64(s[1]+s[2])/float64(f.total), float64(s[1]+s[2]+16*s[0])/float64(f.total))
		}
		fi, _ := os.Stat(f.db.Path())
		b.Logf("file %d, freelist pages %d, tx size %d", fi.Size(), f.db.bolt.Stats().FreePageN, tx.Size())
		return nil
	})
}
