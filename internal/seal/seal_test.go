package seal

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/aichat/aichat/internal/secrets"
)

// overhead is what Seal adds to a plaintext: a 96-bit nonce and a 128-bit tag.
const overhead = 12 + 16

func key(id string) secrets.Key {
	return secrets.Key{ID: id, Secret: secrets.Random(32)}
}

func mustNew(t testing.TB, ring ...secrets.Key) *Sealer {
	t.Helper()
	s, err := New(secrets.Keyring(ring))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	s := mustNew(t, key("k1"))
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"1 byte", 1},
		{"1 KB", 1 << 10},
		{"1 MB", 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt := secrets.Random(tc.size)
			ct, id := s.Seal(pt, "message", "m1", "c1")
			if id != "k1" {
				t.Fatalf("key id = %q, want k1", id)
			}
			if len(ct) != len(pt)+overhead {
				t.Fatalf("len(ciphertext) = %d, want %d", len(ct), len(pt)+overhead)
			}
			if tc.size >= 16 && bytes.Contains(ct, pt[:16]) {
				t.Fatal("ciphertext contains the plaintext")
			}
			got, err := s.Open(ct, id, "message", "m1", "c1")
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatal("Open returned a different plaintext")
			}
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	s := mustNew(t, key("k1"))
	for _, size := range []int{0, 1, 64, 1 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			pt := bytes.Repeat([]byte{'x'}, size)
			seen := map[string]bool{}
			nonces := map[string]bool{}
			for range 100 {
				ct, _ := s.Seal(pt, "a")
				if len(ct) != size+overhead {
					t.Fatalf("len(ciphertext) = %d, want %d", len(ct), size+overhead)
				}
				if seen[string(ct)] {
					t.Fatal("same plaintext sealed to the same ciphertext twice")
				}
				if nonces[string(ct[:12])] {
					t.Fatal("nonce repeated")
				}
				seen[string(ct)], nonces[string(ct[:12])] = true, true
			}
		})
	}
}

func TestOpenFails(t *testing.T) {
	k1, k2 := key("k1"), key("k2")
	s := mustNew(t, k1, k2)
	pt := []byte("the quick brown fox")
	ct, id := s.Seal(pt, "message", "m1", "c1")
	split, _ := s.Seal(pt, "ab", "c")
	empty, _ := s.Seal(pt)
	for _, tc := range []struct {
		name  string
		ct    []byte
		keyID string
		aad   []string
	}{
		{"wrong aad", ct, id, []string{"message", "m2", "c1"}},
		{"aad parts swapped", ct, id, []string{"message", "c1", "m1"}},
		{"aad part case", ct, id, []string{"Message", "m1", "c1"}},
		{"aad re-split", split, id, []string{"a", "bc"}},
		{"aad joined", split, id, []string{"abc"}},
		{"aad missing part", ct, id, []string{"message", "m1"}},
		{"aad no parts", ct, id, nil},
		{"aad extra part", ct, id, []string{"message", "m1", "c1", "x"}},
		{"aad extra empty part", ct, id, []string{"message", "m1", "c1", ""}},
		{"aad given where none sealed", empty, id, []string{""}},
		{"wrong key id", ct, "k2", []string{"message", "m1", "c1"}},
		{"unknown key id", ct, "k3", []string{"message", "m1", "c1"}},
		{"empty key id", ct, "", []string{"message", "m1", "c1"}},
		{"nil ciphertext", nil, id, []string{"message", "m1", "c1"}},
		{"empty ciphertext", []byte{}, id, []string{"message", "m1", "c1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Open(tc.ct, tc.keyID, tc.aad...)
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open err = %v, want ErrOpen", err)
			}
			if got != nil {
				t.Fatalf("Open returned %q with an error", got)
			}
		})
	}
	// The ciphertexts themselves are fine.
	if _, err := s.Open(split, id, "ab", "c"); err != nil {
		t.Fatalf("Open with the right aad: %v", err)
	}
	if _, err := s.Open(empty, id); err != nil {
		t.Fatalf("Open with no aad: %v", err)
	}
}

func TestOpenDetectsBitFlips(t *testing.T) {
	s := mustNew(t, key("k1"))
	pt := secrets.Random(64)
	ct, id := s.Seal(pt, "message", "m1", "c1")
	if _, err := s.Open(ct, id, "message", "m1", "c1"); err != nil {
		t.Fatalf("Open: %v", err)
	}
	for i := range ct {
		for bit := range 8 {
			bad := bytes.Clone(ct)
			bad[i] ^= 1 << bit
			if got, err := s.Open(bad, id, "message", "m1", "c1"); !errors.Is(err, ErrOpen) || got != nil {
				t.Fatalf("byte %d bit %d flipped: Open = %q, %v; want ErrOpen", i, bit, got, err)
			}
		}
	}
}

func TestOpenDetectsTruncation(t *testing.T) {
	s := mustNew(t, key("k1"))
	ct, id := s.Seal(secrets.Random(64), "a")
	// Every prefix: below nonce+tag is "too short", above it a bad tag.
	for n := range len(ct) {
		if got, err := s.Open(ct[:n], id, "a"); !errors.Is(err, ErrOpen) || got != nil {
			t.Fatalf("truncated to %d bytes: Open = %q, %v; want ErrOpen", n, got, err)
		}
	}
	// The nonce and tag of an empty plaintext alone still open.
	ct, id = s.Seal(nil, "a")
	if len(ct) != overhead {
		t.Fatalf("len(ciphertext of empty) = %d, want %d", len(ct), overhead)
	}
	for n := range overhead {
		if _, err := s.Open(ct[:n], id, "a"); !errors.Is(err, ErrOpen) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrOpen", n, err)
		}
	}
	if got, err := s.Open(ct, id, "a"); err != nil || len(got) != 0 {
		t.Fatalf("Open(empty) = %q, %v", got, err)
	}
}

func TestKeyRotation(t *testing.T) {
	k1, k2 := key("k1"), key("k2")
	s := mustNew(t, k1)
	if got := s.CurrentKeyID(); got != "k1" {
		t.Fatalf("CurrentKeyID = %q, want k1", got)
	}
	old, id := s.Seal([]byte("old"), "x")
	if id != "k1" {
		t.Fatalf("sealed with %q, want k1", id)
	}

	if err := s.SetKeys(secrets.Keyring{k2, k1}); err != nil {
		t.Fatalf("SetKeys: %v", err)
	}
	if got := s.CurrentKeyID(); got != "k2" {
		t.Fatalf("CurrentKeyID after rotation = %q, want k2", got)
	}
	fresh, id := s.Seal([]byte("new"), "x")
	if id != "k2" {
		t.Fatalf("sealed with %q after rotation, want k2", id)
	}
	if got, err := s.Open(old, "k1", "x"); err != nil || string(got) != "old" {
		t.Fatalf("Open(old, k1) = %q, %v", got, err)
	}
	if got, err := s.Open(fresh, "k2", "x"); err != nil || string(got) != "new" {
		t.Fatalf("Open(new, k2) = %q, %v", got, err)
	}
	if _, err := s.Open(old, "k2", "x"); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open(old, k2) err = %v, want ErrOpen", err)
	}

	// A keyring without k1 can no longer open what k1 sealed.
	if err := s.SetKeys(secrets.Keyring{k2}); err != nil {
		t.Fatalf("SetKeys: %v", err)
	}
	if _, err := s.Open(old, "k1", "x"); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open(old, k1) without k1: err = %v, want ErrOpen", err)
	}
	other := mustNew(t, k2)
	if _, err := other.Open(old, "k1", "x"); !errors.Is(err, ErrOpen) {
		t.Fatalf("new Sealer without k1: err = %v, want ErrOpen", err)
	}
	// The same id with other key material does not open it either.
	impostor := mustNew(t, key("k1"))
	if _, err := impostor.Open(old, "k1", "x"); !errors.Is(err, ErrOpen) {
		t.Fatalf("other secret under id k1: err = %v, want ErrOpen", err)
	}
}

func TestSetKeysRejects(t *testing.T) {
	short := secrets.Key{ID: "short", Secret: secrets.Random(16)}
	for _, tc := range []struct {
		name string
		ring secrets.Keyring
	}{
		{"nil keyring", nil},
		{"empty keyring", secrets.Keyring{}},
		{"16-byte key", secrets.Keyring{short}},
		{"16-byte old key", secrets.Keyring{key("k1"), short}},
		{"no secret", secrets.Keyring{{ID: "none"}}},
		{"33-byte key", secrets.Keyring{{ID: "long", Secret: secrets.Random(33)}}},
		// Two secrets under one id would open some rows with the wrong key.
		{"repeated id", secrets.Keyring{key("k1"), key("k1")}},
		{"empty id", secrets.Keyring{key("")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.ring); err == nil {
				t.Fatal("New accepted the keyring")
			}
			s := mustNew(t, key("k0"))
			ct, id := s.Seal([]byte("kept"))
			if err := s.SetKeys(tc.ring); err == nil {
				t.Fatal("SetKeys accepted the keyring")
			}
			// A rejected keyring leaves the old one in place.
			if got := s.CurrentKeyID(); got != "k0" {
				t.Fatalf("CurrentKeyID after rejected SetKeys = %q, want k0", got)
			}
			if got, err := s.Open(ct, id); err != nil || string(got) != "kept" {
				t.Fatalf("Open after rejected SetKeys = %q, %v", got, err)
			}
		})
	}
}

func TestOnUnknownKey(t *testing.T) {
	k1, k2 := key("k1"), key("k2")
	ct, _ := mustNew(t, k2).Seal([]byte("rotated elsewhere"), "x")
	s := mustNew(t, k1)
	calls := 0
	s.OnUnknownKey(func() (secrets.Keyring, error) {
		calls++
		return secrets.Keyring{k2, k1}, nil
	})
	got, err := s.Open(ct, "k2", "x")
	if err != nil || string(got) != "rotated elsewhere" {
		t.Fatalf("Open with reload = %q, %v", got, err)
	}
	if calls != 1 || s.CurrentKeyID() != "k2" {
		t.Fatalf("calls = %d, current = %q; want 1, k2", calls, s.CurrentKeyID())
	}
	// A key nobody has: one reload at most per second, then ErrOpen.
	for range 5 {
		if _, err := s.Open(ct, "k9", "x"); !errors.Is(err, ErrOpen) {
			t.Fatalf("Open(k9) err = %v, want ErrOpen", err)
		}
	}
	if calls != 1 {
		t.Fatalf("reload called %d times within a second, want 1", calls)
	}
}

// TestConcurrent seals, opens and rotates from several goroutines; run it
// with -race.
func TestConcurrent(t *testing.T) {
	k1, k2 := key("k1"), key("k2")
	s := mustNew(t, k1, k2)
	before, beforeID := s.Seal([]byte("before"), "shared")
	const workers, rounds = 8, 500
	var wg sync.WaitGroup
	errc := make(chan error, workers+1)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				pt := fmt.Appendf(nil, "worker %d round %d", w, i)
				aad := fmt.Sprint(w, "/", i)
				ct, id := s.Seal(pt, aad)
				if id != "k1" && id != "k2" {
					errc <- fmt.Errorf("sealed with key %q", id)
					return
				}
				got, err := s.Open(ct, id, aad)
				if err != nil || !bytes.Equal(got, pt) {
					errc <- fmt.Errorf("Open own ciphertext = %q, %v", got, err)
					return
				}
				if got, err := s.Open(before, beforeID, "shared"); err != nil || string(got) != "before" {
					errc <- fmt.Errorf("Open shared ciphertext = %q, %v", got, err)
					return
				}
				_ = s.CurrentKeyID()
			}
		})
	}
	wg.Go(func() {
		for i := range rounds {
			ring := secrets.Keyring{k1, k2}
			if i%2 == 1 {
				ring = secrets.Keyring{k2, k1}
			}
			if err := s.SetKeys(ring); err != nil {
				errc <- err
				return
			}
		}
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

var sink []byte

func benchSealer(b *testing.B) (*Sealer, []byte) {
	b.Helper()
	s := mustNew(b, key("k1"))
	return s, secrets.Random(1 << 10)
}

// The associated data is what chat uses for a message.
const benchMsgID, benchChatID = "0196a5a4-8b1e-7c3a-9d1e-2f3a4b5c6d7e", "0196a5a4-8b1e-7c3a-9d1e-000000000001"

func BenchmarkSealOpen1KB(b *testing.B) {
	s, pt := benchSealer(b)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		ct, id := s.Seal(pt, "message", benchMsgID, benchChatID)
		out, err := s.Open(ct, id, "message", benchMsgID, benchChatID)
		if err != nil {
			b.Fatal(err)
		}
		sink = out
	}
}

func BenchmarkSeal1KB(b *testing.B) {
	s, pt := benchSealer(b)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = s.Seal(pt, "message", benchMsgID, benchChatID)
	}
}

func BenchmarkOpen1KB(b *testing.B) {
	s, pt := benchSealer(b)
	ct, id := s.Seal(pt, "message", benchMsgID, benchChatID)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		out, err := s.Open(ct, id, "message", benchMsgID, benchChatID)
		if err != nil {
			b.Fatal(err)
		}
		sink = out
	}
}
