package secrets

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCreatesOnceAndReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, src, err := Load(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !src.Generated {
		t.Fatal("first start did not generate keys")
	}
	info, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
	}
	again, src, err := Load(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if src.Generated || again.Encryption.Current().ID != first.Encryption.Current().ID ||
		string(again.JWT.Current().Secret) != string(first.JWT.Current().Secret) {
		t.Fatal("second start did not reuse the keys")
	}
}

func TestLoadFileRejectsBadKeyrings(t *testing.T) {
	good := NewKey()
	for _, tc := range []struct {
		name string
		set  Set
		want string
	}{
		{"repeated encryption id", Set{JWT: Keyring{NewKey()}, Encryption: Keyring{good, {ID: good.ID, Secret: Random(32)}}}, "repeated"},
		{"no jwt keys", Set{Encryption: Keyring{NewKey()}}, "no keys"},
		{"short secret", Set{JWT: Keyring{NewKey()}, Encryption: Keyring{{ID: "x", Secret: Random(8)}}}, "32 bytes"},
		{"missing id", Set{JWT: Keyring{{Secret: Random(32)}}, Encryption: Keyring{NewKey()}}, "no id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b, _ := json.Marshal(tc.set)
			if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadFile(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadFile error = %v, want one containing %q", err, tc.want)
			}
			if _, _, err := Load(dir, "", ""); err == nil {
				t.Fatal("Load accepted the file")
			}
		})
	}
}

func TestAddEncryptionKeyKeepsOldKeys(t *testing.T) {
	dir := t.TempDir()
	first, _, err := Load(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	k, err := AddEncryptionKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	set, err := LoadFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if set.Encryption.Current().ID != k.ID || len(set.Encryption) != 2 {
		t.Fatalf("after rotation: current %q, %d keys", set.Encryption.Current().ID, len(set.Encryption))
	}
	if _, ok := set.Encryption.Find(first.Encryption.Current().ID); !ok {
		t.Fatal("the old key is gone: rows sealed with it could not be opened")
	}
}

func TestParseEnvKeys(t *testing.T) {
	k := base64.StdEncoding.EncodeToString(Random(32))
	for _, tc := range []struct {
		name, v string
		ok      bool
	}{
		{"one key", "a=" + k, true},
		{"two keys", "a=" + k + ",b=" + k, true},
		{"unpadded base64", "a=" + strings.TrimRight(k, "="), true},
		{"repeated id", "a=" + k + ",a=" + k, false},
		{"no id", "=" + k, false},
		{"not base64", "a=!!!", false},
		{"short", "a=" + base64.StdEncoding.EncodeToString(Random(16)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseEnv(tc.v, "AICHAT_ENCRYPTION_KEYS")
			if (err == nil) != tc.ok {
				t.Fatalf("parseEnv(%q) error = %v, want ok=%v", tc.v, err, tc.ok)
			}
		})
	}
}

func TestIndexKeyAddedToOldFileAndOverridable(t *testing.T) {
	dir := t.TempDir()
	old := Set{JWT: Keyring{NewKey()}, Encryption: Keyring{NewKey()}}
	b, _ := json.Marshal(old)
	if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	set, _, err := Load(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Index) != 1 || len(set.Index[0].Secret) != 32 {
		t.Fatalf("index keyring %v, want one generated key", set.Index)
	}
	if string(set.Index[0].Secret) == string(set.Encryption[0].Secret) {
		t.Fatal("index key equals the encryption key")
	}
	again, _, err := Load(dir, "", "")
	if err != nil || again.Index.Current().ID != set.Index.Current().ID {
		t.Fatalf("index key not kept across starts: %v", err)
	}
	env := "ix1=" + base64.StdEncoding.EncodeToString(Random(32))
	fromEnv, _, err := Load(dir, "", "", env)
	if err != nil || fromEnv.Index.Current().ID != "ix1" {
		t.Fatalf("AICHAT_INDEX_KEYS not used: %v %v", fromEnv.Index, err)
	}
}
