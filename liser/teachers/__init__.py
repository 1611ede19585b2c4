"""The teachers whose outputs the students distil on unlabeled video, one module per job:

- the speech teacher (HuBERT + LoRA, one per labeled corpus and fold): its start point
  (``speech_base``: fetched, recorded, checked), how waveforms reach it (``speech_input``), the model, LoRA and
  its saved form (``speech_model``), fine-tuning (``speech_training``), scoring labeled utterances
  (``speech_evaluation``) and the unlabeled windows (``speech_windows``), and its stages (``speech_runs``);
- the video teacher (S2D): its published files (``video_weights``), the model and its saved form
  (``video_model``), a corpus's clips as it sees and scores them (``video_clips``), training (``video_training``),
  scoring the unlabeled windows (``video_windows``), and its stages (``video_runs``);
- what both share: fetching and checking published files (``fetching``), and the weights fingerprint that lets
  window softmaxes be reused (``window_scores``).

Teachers write window-softmax tables only through :mod:`liser.window_tables`; they never import the students.
"""
