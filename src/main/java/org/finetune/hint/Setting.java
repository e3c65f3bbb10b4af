package org.finetune.hint;

/** The setting a fix concerns. */
public enum Setting {
  /** Nothing in particular: the problem says all. */
  NONE,
  /** The training data. */
  DATA,
  /** The model, or the signature trained. */
  MODEL,
  /** A new classification head. */
  HEAD,
  /** The layer whose output a new head takes. */
  FEATURES,
  /** The image size of a model that takes any size. */
  IMAGE_SIZE,
  /** The export directory: another one, or overwriting it. */
  EXPORT,
  /** The checkpoint resumed from. */
  RESUME,
  /** Layer groups for gradual unfreezing. */
  GROUPS,
  /** Tokens per block of text. */
  SEQUENCE_LENGTH,
  /** Validation data or split. */
  VALIDATION,
  /** Augmentation. */
  AUGMENTATION,
  /** The training plan. */
  PLAN,
  /** Which layers train: the names that selectors, stages and groups give. */
  LAYERS,
  /** Which kernels get low-rank adapters. */
  ADAPTERS,
  /** Loading a model whose graph holds ops that touch files, processes or the network. */
  UNSAFE_OPS,
  /** Which of a SavedModel's signatures to use. */
  SIGNATURE,
  /** Which of a SavedModel's MetaGraphs (by tag set) to load. */
  TAGS,
  /** The device the runtime places work on. */
  DEVICE,
  /** What training does at a non-finite loss or gradient. */
  NON_FINITE,
  /** Whether unreadable data stops the run or is skipped with a warning. */
  STRICT_DATA,
  /** The loss an array task minimises. */
  LOSS,
  /** Whether an array task's outputs are logits. */
  FROM_LOGITS,
  /** How images are preprocessed for the model. */
  PREPROCESS
}
