//go:build !race

package search_test

const raceBuild = false
