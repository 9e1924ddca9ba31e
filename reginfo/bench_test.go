package reginfo

import "testing"

func BenchmarkParse(b *testing.B) {
	body := readTestdata(b, "ims-full.xml")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	r, err := Parse(readTestdata(b, "ims-full.xml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
