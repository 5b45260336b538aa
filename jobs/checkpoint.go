package jobs

import (
	"context"
	"sync"

	"github.com/shelfml/shelf/io/blobs"
)

// checkpointer uploads a fit's checkpoints in the background, so that a
// slow store never stalls training: a new checkpoint replaces one still
// waiting (only the newest matters), and at most one upload runs. A failed
// upload is logged, not fatal: a checkpoint only saves work on a retry. The
// last checkpoint — written when the run is stopped (SIGTERM) — is written
// before the fit returns, which is when it matters most.
type checkpointer struct {
	e   *env
	key string

	mu      sync.Mutex
	pending []byte
	running bool
	idle    *sync.Cond
}

func newCheckpointer(e *env, key string) *checkpointer {
	c := &checkpointer{e: e, key: key}
	c.idle = sync.NewCond(&c.mu)
	return c
}

// put queues data for upload.
func (c *checkpointer) put(data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = data
	if !c.running {
		c.running = true
		go c.loop()
	}
}

func (c *checkpointer) loop() {
	for {
		c.mu.Lock()
		data := c.pending
		c.pending = nil
		if data == nil {
			c.running = false
			c.idle.Broadcast()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.write(data)
	}
}

// write uploads one checkpoint, never for a run that lost its lock; it
// outlives a cancelled run context (SIGTERM is when a checkpoint matters).
func (c *checkpointer) write(data []byte) {
	ctx := context.WithoutCancel(context.Background())
	if err := c.e.fence(ctx); err != nil {
		c.e.log.Warn("checkpoint not written: the run no longer holds its lock", "key", c.key, "err", err)
		return
	}
	if err := blobs.WriteFile(ctx, c.e.out, c.key, data, blobs.DefaultPolicy()); err != nil {
		c.e.log.Warn("checkpoint upload failed (training goes on; a retry resumes from an older one)", "key", c.key, "err", err)
	}
}

// flush waits until every queued checkpoint is uploaded (or failed).
func (c *checkpointer) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.running {
		c.idle.Wait()
	}
}
