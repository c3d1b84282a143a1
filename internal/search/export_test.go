package search

import "context"

// SetMaxChatsPerStatement lets tests reach the several-statements path
// without a hundred chats; it returns the function that restores it.
func SetMaxChatsPerStatement(n int) func() {
	old := maxChatsPerStatement
	maxChatsPerStatement = n
	return func() { maxChatsPerStatement = old }
}

// ValuesUnder returns text's index values in chatID under the index key
// keyID (which the service must have).
func (s *Service) ValuesUnder(keyID, chatID, text string) []int {
	root, ok := s.secret(keyID)
	if !ok {
		panic("no index key " + keyID)
	}
	return values(root, chatID, text, false)
}

// SetRebuildBatchHook makes every rebuild batch call fn after it
// committed (nil: nothing); it returns the function that restores it.
func SetRebuildBatchHook(fn func()) func() {
	old := rebuildBatchHook
	rebuildBatchHook = fn
	return func() { rebuildBatchHook = old }
}

// SetCountOrder turns walking each chat's rarest value on or off (off:
// the query's word order); it returns the function that restores it.
func SetCountOrder(on bool) func() {
	old := countOrder
	countOrder = on
	return func() { countOrder = old }
}

// SetWritersWaiting makes the indexer see fn() writers waiting for the
// database (on SQLite it then commits after every message); it returns
// the function that restores it.
func (s *Service) SetWritersWaiting(fn func() int) func() {
	s.Flush(context.Background())
	old := s.waiting
	s.waiting = fn
	return func() { s.Flush(context.Background()); s.waiting = old }
}
