package storage

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestWords(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"", nil},
		{"  ,.!? ", nil},
		{"Hello, World!", []string{"hello", "world"}},
		{"the cat and the hat", []string{"and", "cat", "hat", "the"}},
		{"Crème BRÛLÉE café", []string{"brulee", "cafe", "creme"}},
		{"don't", []string{"don", "t"}},
		{"Ｆｕｌｌ width ﬁle", []string{"file", "full", "width"}},
		{"Привет, Мир! Ёлка", []string{"елка", "мир", "привет"}},
		{"ΟΔΥΣΣΕΥΣ Οδυσσεύς", []string{"οδυσσευσ"}},
		{"東京に行く", []string{"く", "に", "京", "東", "行"}},
		{"서울 시", []string{"서", "시", "울"}},
		{"abc123 42", []string{"42", "abc123"}},
		{"a\u0301", []string{"a"}},
		{strings.Repeat("x", 100), []string{strings.Repeat("x", maxWordLen)}},
		{strings.Repeat("é", 40), []string{strings.Repeat("e", 40)}},
		{strings.Repeat("ж", 40), []string{strings.Repeat("ж", maxWordLen/2)}},
		{"\xff\xfeab", []string{"ab"}},
	}
	for _, tt := range tests {
		got := appendWords(nil, tt.text)
		if !slices.Equal(got, tt.want) {
			t.Errorf("words(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

// FuzzWords checks what the index relies on: words are non-empty, valid
// UTF-8, without NUL (they are part of keys), at most maxWordLen bytes,
// sorted and distinct, and folded (a word's words are itself).
func FuzzWords(f *testing.F) {
	for _, s := range []string{"Hello, World!", "Crème brûlée", "Привет Ёлка", "Οδυσσεύς", "東京に行く", "ﬁ½Ａ", "a\x00b", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		words := appendWords(nil, text)
		if !slices.IsSorted(words) || len(slices.Compact(slices.Clone(words))) != len(words) {
			t.Fatalf("words(%q) = %q: not sorted and distinct", text, words)
		}
		for _, w := range words {
			if w == "" || len(w) > maxWordLen || !utf8.ValidString(w) || strings.IndexByte(w, 0) >= 0 {
				t.Fatalf("words(%q) holds the bad word %q", text, w)
			}
			if again := appendWords(nil, w); len(again) != 1 || again[0] != w {
				t.Fatalf("words(%q) holds %q, whose words are %q", text, w, again)
			}
		}
	})
}

func BenchmarkWords(b *testing.B) {
	text := "Hey, are we still meeting at the café tomorrow? I'll bring the documents — Ёлка 東京"
	b.ReportAllocs()
	var buf []string
	for b.Loop() {
		buf = appendWords(buf[:0], text)
	}
}
