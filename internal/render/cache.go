package render

import (
	"container/list"
	"crypto/sha256"
	"sync"
)

// Cache remembers rendered HTML by the Markdown's hash, so that history
// pages and finished answers, which many members and tabs ask for, are
// rendered once. It is bounded by the bytes of HTML it holds and evicts
// the least recently used entries. Safe for concurrent use.
type Cache struct {
	r        *Renderer
	maxBytes int

	mu    sync.Mutex
	bytes int
	order *list.List // front: most recently used
	byKey map[cacheKey]*list.Element
}

type cacheKey = [sha256.Size]byte

type cacheEntry struct {
	key  cacheKey
	html string
}

// NewCache wraps r with a cache holding at most maxBytes of HTML.
func NewCache(r *Renderer, maxBytes int) *Cache {
	return &Cache{r: r, maxBytes: maxBytes, order: list.New(), byKey: map[cacheKey]*list.Element{}}
}

// HTML is [Renderer.HTML], cached.
func (c *Cache) HTML(markdown string) string { return c.get(markdown) }

// Partial is [Renderer.Partial], not cached: a streaming answer's text is
// new at every call, so caching it would only evict finished answers.
func (c *Cache) Partial(markdown string) string { return c.r.Partial(markdown) }

func (c *Cache) get(markdown string) string {
	k := sha256.Sum256([]byte(markdown))
	c.mu.Lock()
	if e, ok := c.byKey[k]; ok {
		c.order.MoveToFront(e)
		html := e.Value.(*cacheEntry).html
		c.mu.Unlock()
		return html
	}
	c.mu.Unlock()
	// Rendered outside the lock: two callers may render the same text at
	// once, which costs CPU once more but never blocks other texts.
	html := c.r.HTML(markdown)
	if len(html) > c.maxBytes/8 {
		return html // too big to be worth evicting many others for
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[k]; !ok {
		c.byKey[k] = c.order.PushFront(&cacheEntry{key: k, html: html})
		c.bytes += len(html)
		for c.bytes > c.maxBytes {
			last := c.order.Back()
			ent := last.Value.(*cacheEntry)
			c.order.Remove(last)
			delete(c.byKey, ent.key)
			c.bytes -= len(ent.html)
		}
	}
	return html
}

// Len reports how many rendered texts are cached.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byKey)
}
