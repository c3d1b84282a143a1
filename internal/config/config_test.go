package config

import "testing"

func TestSearchStemmingSetting(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
		ok   bool
	}{{"", false, true}, {"off", false, true}, {"on", true, true}, {"yes", false, false}} {
		c, err := Load(nil, func(k string) string {
			if k == "AICHAT_SEARCH_STEMMING" {
				return tc.v
			}
			return ""
		})
		if (err == nil) != tc.ok || (err == nil && c.SearchStemming != tc.want) {
			t.Errorf("AICHAT_SEARCH_STEMMING=%q: %v, %v", tc.v, c.SearchStemming, err)
		}
	}
}
