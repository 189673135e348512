package fetcher

import "hash"

// hashPipe hashes in its own goroutine what Write hands it, so that
// hashing a large blob overlaps with whatever the reader does with the
// bytes (in containerd's process, the content store hashes and writes them
// too). At most pipeChunks chunks of pipeChunk bytes are in flight.
type hashPipe struct {
	h     hash.Hash
	q     chan []byte
	free  chan []byte
	done  chan struct{}
	made  int
	ended bool
}

const (
	pipeChunk  = 1 << 20
	pipeChunks = 4
	// pipeMin is the blob size from which hashing is piped.
	pipeMin = 8 << 20
)

func newHashPipe(h hash.Hash) *hashPipe {
	p := &hashPipe{h: h, q: make(chan []byte, pipeChunks), free: make(chan []byte, pipeChunks), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for b := range p.q {
			p.h.Write(b)
			p.free <- b // never blocks: free holds every chunk made
		}
	}()
	return p
}

// Write queues a copy of b for hashing.
func (p *hashPipe) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		var c []byte
		select {
		case c = <-p.free:
		default:
			if p.made < pipeChunks {
				c, p.made = make([]byte, pipeChunk), p.made+1
			} else {
				c = <-p.free
			}
		}
		m := copy(c[:cap(c)], b)
		p.q <- c[:m]
		b = b[m:]
	}
	return n, nil
}

// end waits for every queued byte to be hashed; the hash is then final.
func (p *hashPipe) end() {
	if !p.ended {
		p.ended = true
		close(p.q)
		<-p.done
	}
}
