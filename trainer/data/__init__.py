"""Data: every source read into one `LoadedData`, checked, split, and fed to training.

Imports run one way: `types` (the shared result types) <- `images`, `split` <- the loaders
(`idx`, `folders`, `tabular`, `cifar`, `tfds_source`) <- `sources` (`load_source`) <- `check`
<- `prepare`; `pipeline`, `text` and `preview` turn arrays into `tf.data` batches and pictures.
The command line is `trainer.cli.data`.
"""
