package social

import "testing"

func TestMentions(t *testing.T) {
	tests := []struct {
		text, name, email string
		want              bool
	}{
		{"hi @bob", "Bob", "bob@example.com", true},
		{"@BOB: look", "Bob", "bob@example.com", true},
		{"thanks @bob.", "Bob", "bob@example.com", true},
		{"(@bob)", "Bob", "bob@example.com", true},
		{"hey @Bob Smith, look", "Bob Smith", "bs@example.com", true},
		{"hi @bs", "Bob Smith", "bs@example.com", true},
		{"@bobby", "Bob", "bob@example.com", false},
		{"@bob.smith", "Bob", "bob@example.com", false},
		{"@bob_x", "Bob", "bob@example.com", false},
		{"me@bob", "Bob", "bob@example.com", false},
		{"mail bob@example.com", "Bob", "bob@example.com", false},
		{"@ai hello", "ai", "ai@example.com", false},
		{"no at sign", "Bob", "bob@example.com", false},
		{"@ünal hallo", "Ünal", "u@example.com", true},
		{"@bob @bobby", "Bob", "bob@example.com", true},
		{"@bobby @bob", "Bob", "bob@example.com", true},
		{"", "", "", false},
	}
	for _, tc := range tests {
		if got := Mentions(tc.text, tc.name, tc.email); got != tc.want {
			t.Errorf("Mentions(%q, %q, %q) = %v, want %v", tc.text, tc.name, tc.email, got, tc.want)
		}
	}
}
