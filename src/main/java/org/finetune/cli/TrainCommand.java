package org.finetune.cli;

import com.google.gson.JsonPrimitive;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.apache.commons.cli.Options;
import org.finetune.export.ExportResult;
import org.finetune.job.FineTuneJob;
import org.finetune.job.FineTuneResult;
import org.finetune.job.JobListener;
import org.finetune.job.JobSpec;
import org.finetune.model.KerasSavedModel;

/** {@code finetune train MODEL --data DIR --out DIR}: fine-tune an image classifier on a labelled folder. */
final class TrainCommand implements Command {
  @Override
  public String name() {
    return "train";
  }

  @Override
  public String synopsis() {
    return "MODEL --data PATH [--task image-classification|video-classification|causal-lm|arrays] [--out DIR] [--head]"
        + " [--epochs N]"
        + " [--unfreeze gradual:K] [...]  |  [MODEL] --job FILE";
  }

  @Override
  public String summary() {
    return "fine-tune a SavedModel on labelled images, video clips, text (causal LM) or arrays and export it";
  }

  @Override
  public String details() {
    return "DIR holds one sub-folder per class. Images are decoded, resized and preprocessed as Keras's\n"
        + "image_dataset_from_directory and preprocess_input would (the family's: every keras.applications\n"
        + "family is known; else --preprocess). --head puts a new classifier (one output per class) on the\n"
        + "family's features (VGG16: block5_pool, ResNet: conv5_block3_out, ...), else in place of the\n"
        + "model's final layer, or on --features-at; by default only the head trains.\n"
        + "--unfreeze gradual:K adds one layer group from the top every K epochs (the family's, e.g. VGG16:\n"
        + "block5, block4, ...; or --groups), each at 1/2.6 the rate of the one above\n"
        + "(--discriminative-lr). --plan FILE takes the whole plan from JSON instead; the resolved plan\n"
        + "is printed and kept in the export's assets/finetune.json. Checkpoints (--checkpoints DIR) hold\n"
        + "the optimizer state and data position: --resume DIR/last continues exactly.\n\n"
        + "--task video-classification trains on clips: DIR/<class>/<clip>/<frame>.png|jpg, frames in name\n"
        + "order, --frames N of them taken evenly from each clip. The image model runs on every frame with\n"
        + "shared weights, then a temporal head (--temporal conv: a 1-D convolution over time that sees the\n"
        + "order of frames; average: the mean over frames) and the classifier. The export takes\n"
        + "[batch, frames, height, width, 3] and returns class probabilities.\n\n"
        + "--task causal-lm fine-tunes a language model exported like keras-hub's GPT2CausalLM (inputs\n"
        + "token_ids and padding_mask) on text: --data takes files and folders (of *.txt), comma-separated;\n"
        + "documents are tokenised with GPT-2's BPE, joined with <|endoftext|> and cut into blocks of\n"
        + "--seq-len tokens. The loss is next-token cross-entropy; perplexity is reported. Validation text is\n"
        + "--val-data, or --val-split of the documents. Groups for --unfreeze: the last transformer layer\n"
        + "with the final layer norm, then each layer below, then the embeddings.\n\n"
        + "--job FILE takes the whole job from JSON instead of these flags (its keys are the flags' settings\n"
        + "in snake_case: data, new_head, epochs, optimizer, checkpoints, export, ...; see the README's\n"
        + "Library section); only the runtime flags, --allow-unsafe-ops and --result go with it.";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(ModelFlags.allowUnsafeOps());
    ModelFlags.addRuntime(o);
    o.addOption(opt("job", "FILE", "take the whole job from this JSON file (keys as the README lists)"));
    o.addOption(opt("data", "PATH", "labelled images: one sub-folder per class; with --task causal-lm, text files"
        + " and folders, comma-separated; with --task arrays, a .npz (one array per input), a folder of INPUT.npy files,"
        + " a .npy or a CSV (required)"));
    o.addOption(opt("task", "TASK", "image-classification (default), video-classification, causal-lm or arrays (any"
        + " model on .npz/.npy/CSV arrays, as Keras's fit(x, y))"));
    o.addOption(opt("frames", "N", "video: frames taken evenly from each clip (default: 8)"));
    o.addOption(opt("temporal", "KIND", "video: how the head joins frames: conv (default, sees their order) or"
        + " average"));
    o.addOption(opt("val-data", "PATH", "causal-lm: validation text files and folders, comma-separated; arrays: the"
        + " validation inputs, as --data"));
    o.addOption(opt("targets", "FILE|NAMES", "arrays: the targets, a .npy file, or the arrays (CSV columns) of --data"
        + " that hold them; for several outputs, OUTPUT=FILE.npy|ARRAY pairs joined by commas"));
    o.addOption(opt("val-targets", "FILE|NAMES", "arrays: the targets of --val-data (default: the same names)"));
    o.addOption(opt("loss", "NAME", "arrays: sparse_categorical_crossentropy, categorical_crossentropy,"
        + " binary_crossentropy, mean_squared_error, mean_absolute_error or huber (default: read from the targets"
        + " and the output, and stated); for several outputs, OUTPUT=LOSS pairs"));
    o.addOption(opt("loss-weights", "OUT=W,...", "arrays, several outputs: each output's weight in the sum of losses"
        + " (default: 1 each, as Keras's loss_weights)"));
    o.addOption(Option.builder().longOpt("from-logits").desc("arrays: the outputs are logits (Keras's"
        + " from_logits=True): a cross-entropy applies the softmax (sigmoid for one unit) itself").build());
    o.addOption(Option.builder().longOpt("no-shuffle").desc("arrays: keep the examples in file order every epoch"
        + " (Keras's shuffle=False)").build());
    o.addOption(opt("head-units", "N", "arrays: outputs of the new head (default: one per class, or the targets'"
        + " width)"));
    o.addOption(opt("head-activation", "NAME", "arrays: softmax, sigmoid or linear (default: from the loss)"));
    o.addOption(opt("seq-len", "N", "causal-lm: tokens per block (default: 128, at most the model's positions)"));
    o.addOption(opt("out", "DIR", "export the fine-tuned SavedModel here"));
    o.addOption(Option.builder().longOpt("head").desc("put a new classification head on the model").build());
    o.addOption(opt("hidden", "N", "hidden Dense units in the head (default: none)"));
    o.addOption(opt("dropout", "RATE", "dropout after the hidden layer (default: 0)"));
    o.addOption(opt("features-at", "LAYER", "the layer whose output feeds the head"));
    o.addOption(opt("train", "SELECTOR", "what trains at first (default: head with --head, else all)"));
    o.addOption(opt("freeze", "SELECTOR", "what stays frozen at first; everything else trains (not with --train)"));
    o.addOption(opt("unfreeze", "gradual:K", "unfreeze one more layer group from the top every K epochs"));
    o.addOption(opt("groups", "G1,G2,...", "layer groups for gradual unfreezing, top first (separate them with ';'"
        + " when a group itself holds commas, as layers:a,b does)"));
    o.addOption(opt("discriminative-lr", "F", "each lower group learns F times slower (default: 2.6)"));
    o.addOption(opt("optimizer", "NAME", "adam (default), sgd or adamw"));
    o.addOption(opt("lr", "RATE", "learning rate (default: the optimizer's Keras default)"));
    o.addOption(opt("momentum", "M", "SGD momentum (default: 0.9 with --optimizer sgd)"));
    o.addOption(opt("l2sp", "W", "L2-SP weight pulling weights back to the pretrained ones (default: 0)"));
    o.addOption(opt("lora", "RANK", "low-rank adapters (LoRA) of this rank on the target kernels, which stay frozen;"
        + " the adapters alone train unless --train/--freeze say more (select them as 'adapters'); merged at export"));
    o.addOption(opt("lora-alpha", "A", "with --lora: scale the adapters' update by A/RANK (default: RANK, Keras's 1)"));
    o.addOption(opt("lora-out", "DIR", "with --lora: also write the adapters apart from the base here (adapters.json"
        + " and .npy files, for serving.Predictor.putAdapters)"));
    o.addOption(opt("lora-targets", "GLOB,...", "with --lora: the kernels to adapt, as globs over variable names"
        + " (default: attention query and value kernels, as keras-hub; else every 2-D Dense kernel)"));
    o.addOption(opt("batch-size", "N", "images per step (default: 32), or blocks of text (default: 8)"));
    o.addOption(opt("epochs", "N", "epochs (default: 5)"));
    o.addOption(opt("val-split", "F", "fraction held out for validation (default: 0.2; 0 for none)"));
    o.addOption(opt("seed", "N", "seeds the split, shuffling, augmentation and the head (default: 1234)"));
    o.addOption(opt("preprocess", "MODE", "caffe, tf, torch or none (default: from the model family)"));
    o.addOption(opt("image-size", "HxW", "input size, for models that take any size"));
    o.addOption(opt("early-stopping", "PATIENCE", "stop after PATIENCE epochs without improvement; keep the best"));
    o.addOption(opt("reduce-lr", "PATIENCE", "halve the learning rate after PATIENCE epochs without improvement"));
    o.addOption(opt("schedule", "NAME", "learning-rate schedule over the run: constant (default), cosine (10% warmup"
        + " then cosine decay to 0) or slanted (ULMFiT's slanted triangular)"));
    o.addOption(opt("checkpoints", "DIR", "write checkpoints (DIR/last every epoch, DIR/best)"));
    o.addOption(opt("checkpoint-every", "N", "with --checkpoints: also write DIR/last every N batches within an epoch"));
    o.addOption(opt("resume", "CHECKPOINT", "continue from a checkpoint (e.g. DIR/last)"));
    o.addOption(opt("history", "CSV", "write the per-epoch history as CSV"));
    o.addOption(opt("result", "JSON", "when training ends, write what it did as JSON: every epoch's logs (across"
        + " resumes), the best epoch, the plan and the export"));
    o.addOption(opt("tensorboard", "DIR", "write TensorBoard event files (DIR/train, DIR/validation)"));
    o.addOption(opt("curves", "PNG", "draw the training curves (redrawn every epoch)"));
    o.addOption(opt("plan", "FILE", "take the training plan from this JSON file"));
    o.addOption(Option.builder().longOpt("no-cache")
        .desc("recompute the base every step even when only the head trains").build());
    o.addOption(Option.builder().longOpt("flip").desc("augment with random horizontal flips").build());
    o.addOption(opt("zoom", "F", "augment with random zoom-in: crops of 1-F to 1 of each side (default: off)"));
    o.addOption(opt("brightness", "F", "augment with random brightness shifts of up to F*255 (default: off)"));
    o.addOption(Option.builder().longOpt("strict").desc("fail on an unreadable image (or invalid UTF-8) instead of"
        + " skipping it (replacing it)").build());
    o.addOption(Option.builder().longOpt("overwrite").desc("replace --out if it exists").build());
    o.addOption(opt("on-non-finite", "POLICY", "stop (default): a NaN or infinite loss or gradient ends training, the"
        + " model keeping the last good step; skip: such batches are skipped (counted in skipped_batches)"));
    return o;
  }

  /** A flag with one value. */
  static Option opt(String name, String arg, String desc) {
    return Flags.opt(name, arg, desc);
  }

  @Override
  public int run(CommandLine line, PrintWriter out, PrintWriter err) {
    List<String> args = line.getArgList();
    JobSpec spec;
    Path modelDir;
    if (line.hasOption("job")) {
      spec = jobFile(line);
      if (args.size() > 1 || args.size() == 1 && spec.model().isPresent()) {
        throw new UsageException("give the model once: the job " + line.getOptionValue("job")
            + (spec.model().isPresent() ? " names it" : " names none, so give one MODEL"));
      }
      modelDir = args.size() == 1 ? Path.of(args.get(0)) : spec.model().orElseThrow(() -> new UsageException(
          "the job " + line.getOptionValue("job") + " names no \"model\"; add it there or give MODEL"));
    } else {
      if (args.size() != 1) {
        throw new UsageException("give one SavedModel directory: finetune train MODEL --data DIR");
      }
      spec = new TrainFlags(line).spec();
      modelDir = Path.of(args.get(0));
    }
    ModelFlags.warnIneffective(line, err);
    try (KerasSavedModel model = ModelFlags.open(modelDir, line)) {
      FineTuneJob job = Flags.parse(() -> spec.applyTo(FineTuneJob.builder(model)
          .listener(JobListener.printing(out, err, System.console() != null))).build());
      FineTuneResult result = job.run();
      spec.result().ifPresent(result::write);
      report(result, spec.toJson().has("early_stopping"), out);
    }
    return ExitCode.OK;
  }

  /** --job FILE, with --result if given; other flags describing the job are refused, not mixed in. */
  private static JobSpec jobFile(CommandLine line) {
    Set<String> beside = Set.of("job", "result", "allow-unsafe-ops", "verbose", "device", "mixed-precision", "xla",
        "threads");
    for (Option o : line.getOptions()) {
      if (!beside.contains(o.getLongOpt())) {
        throw new UsageException("--job FILE describes the whole job; put --" + o.getLongOpt()
            + " in the file instead (as its snake_case key)");
      }
    }
    JobSpec spec = Flags.parse(() -> JobSpec.read(Path.of(line.getOptionValue("job"))));
    return line.hasOption("result")
        ? Flags.parse(() -> spec.with("result", new JsonPrimitive(line.getOptionValue("result")))) : spec;
  }

  /** After training: the best epoch when early stopping ran, and the export. */
  private static void report(FineTuneResult r, boolean earlyStopping, PrintWriter out) {
    if (r.history().isEmpty()) {
      out.println("Nothing to do: the run had finished all " + r.epochs() + " epochs.");
    }
    if (earlyStopping && r.bestEpoch().isPresent()) {
      out.printf(Locale.ROOT, "Best %s %.4f at epoch %d%s%n", r.monitor(), r.best().getAsDouble(),
          r.bestEpoch().getAsInt() + 1, r.stoppedEarly() ? " (stopped early; its weights restored)" : "");
    }
    r.export().ifPresent(e -> {
      out.printf(Locale.ROOT, "Exported to %s (%s, %d variables, %.1f MB)%n", e.dir(),
          e.mode() == ExportResult.Mode.NEW_HEAD ? "new head" : "same architecture", e.variables(), e.bytes() / 1e6);
      out.println("Python: " + e.python());
    });
    out.flush();
  }
}
