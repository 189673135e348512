package testutil

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
)

// SparseTar is an uncompressed layer tar holding one file, name, that a
// PAX sparse entry (GNU sparse format 1.0) declares to be realSize bytes
// of holes: a few hundred bytes that archive/tar (so containerd's
// applier) expands into realSize bytes on disk. archive/tar cannot write
// one, so the blocks are made here.
func SparseTar(t testing.TB, name string, realSize int64) []byte {
	t.Helper()
	records := ""
	for _, kv := range [][2]string{
		{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", name}, {"GNU.sparse.realsize", strconv.FormatInt(realSize, 10)},
	} {
		records += paxRecord(kv[0], kv[1])
	}
	var b bytes.Buffer
	b.Write(ustarBlock("PaxHeaders/"+name, 'x', int64(len(records))))
	b.Write(padBlock([]byte(records)))
	// The data: the sparse map (no data fragments: all holes), then none.
	sparseMap := padBlock([]byte("0\n"))
	b.Write(ustarBlock("GNUSparseFile.0/"+name, '0', int64(len(sparseMap))))
	b.Write(sparseMap)
	b.Write(make([]byte, 1024)) // end of archive
	return b.Bytes()
}

// paxRecord is "len key=value\n", len counting itself.
func paxRecord(k, v string) string {
	body := " " + k + "=" + v + "\n"
	n := len(body)
	for {
		s := strconv.Itoa(n) + body
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

func padBlock(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

// ustarBlock is a ustar header block.
func ustarBlock(name string, typ byte, size int64) []byte {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", size))
	copy(h[136:148], fmt.Sprintf("%011o\x00", 1700000000))
	h[156] = typ
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return h
}
