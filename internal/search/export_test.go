package search

// SetMaxChatsPerStatement lets tests reach the several-statements path
// without a hundred chats; it returns the function that restores it.
func SetMaxChatsPerStatement(n int) func() {
	old := maxChatsPerStatement
	maxChatsPerStatement = n
	return func() { maxChatsPerStatement = old }
}
