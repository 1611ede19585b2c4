"""The corpora as distributed: the labeled speech corpora (:mod:`liser.corpora.labeled`, one reader per layout:
RAVDESS, CREMA-D, IEMOCAP, a manifest table, EmoBox lists), the unlabeled audio-visual lists of MSP-Face
(:mod:`liser.corpora.mspface`) and the video teacher's FERV39k (:mod:`liser.corpora.ferv39k`).  Each module is
imported on its own: a stage that reads one corpus depends on that corpus's code only."""
