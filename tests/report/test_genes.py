"""Genes of the regional views' gene track: BED and GTF read the same, matched to PLINK's
chromosome names, and chosen by overlap with a region."""

from __future__ import annotations

from genoformer.report.genes import genes_near, read_genes


def test_bed_and_gtf_give_the_same_genes(tmp_path):
    bed = tmp_path / "genes.bed"
    bed.write_text(
        "track name=genes\nchr1\t99\t200\tA\t0\t+\nchr1\t149\t400\tB\t0\t-\n2\t0\t10\tC\n"
    )
    gtf = tmp_path / "genes.gtf"
    gtf.write_text(
        "#!genome-build test\n"
        'chr1\tsrc\tgene\t100\t200\t.\t+\t.\tgene_id "g1"; gene_name "A";\n'
        'chr1\tsrc\texon\t100\t150\t.\t+\t.\tgene_id "g1"; gene_name "A";\n'
        'chr1\tsrc\tgene\t150\t400\t.\t-\t.\tgene_id "B";\n'
        '2\tsrc\tgene\t1\t10\t.\t.\t.\tgene_id "g3"; gene_name "C";\n'
    )
    from_bed, from_gtf = read_genes(bed), read_genes(gtf)
    assert from_bed.to_dict("records") == from_gtf.to_dict("records")
    # BED's 0-based half-open start is 1-based closed here; chr1 is PLINK's 1.
    assert from_bed.iloc[0].to_dict() == {"chrom": "1", "start": 100, "end": 200, "name": "A",
                                          "strand": "+"}  # fmt: skip
    assert from_bed.iloc[2]["strand"] == "."


def test_genes_near_a_region_are_those_that_overlap_it(tmp_path):
    bed = tmp_path / "genes.bed"
    bed.write_text("chr1\t500\t600\tlate\nchr1\t99\t200\tearly\nchr1\t1000\t2000\tfar\n")
    genes = read_genes(bed)
    assert [g["name"] for g in genes_near(genes, "1", 150, 550)] == ["early", "late"]
    assert [g["name"] for g in genes_near(genes, "chr1", 201, 500)] == []
    assert genes_near(genes, "2", 0, 10_000) == [] and genes_near(None, "1", 0, 10) == []
