"""Readers of sequence data sets: FASTA, TSV / CSV tables, BED + genome.

Each returns a :class:`~genoformer.seq.data.SequenceData`;
:func:`~genoformer.seq.io.load.load_sequences` picks the reader by the file extension.
Readers check their input as they go and raise :class:`InputError` with the file, the place
(line, record, position) and the fix. Sequences keep their case as read (soft-masked repeats
stay lower case; the encoders read both cases alike).
"""
