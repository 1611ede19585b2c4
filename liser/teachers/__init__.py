"""The teachers whose outputs the student distils on unlabeled video: a HuBERT speech
teacher fine-tuned with LoRA on each labeled corpus (``speech``)."""
