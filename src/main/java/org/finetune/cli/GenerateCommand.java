package org.finetune.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.apache.commons.cli.Options;
import org.finetune.model.KerasSavedModel;
import org.finetune.text.Gpt2Tokenizer;
import org.finetune.text.TextGenerator;

/** {@code finetune generate --model DIR --prompt TEXT}: continue a prompt with a causal language model. */
final class GenerateCommand implements Command {
  @Override
  public String name() {
    return "generate";
  }

  @Override
  public String synopsis() {
    return "--model DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]";
  }

  @Override
  public String summary() {
    return "continue a prompt with a GPT-2-style SavedModel, streaming the tokens";
  }

  @Override
  public String details() {
    return "The model is exported like keras-hub's GPT2CausalLM (token_ids and padding_mask in, logits out);\n"
        + "the prompt is tokenised with GPT-2's BPE. Tokens are printed as they come and generation stops\n"
        + "at <|endoftext|> or after --max-new-tokens. --temperature 0 (the default) decodes greedily, as\n"
        + "keras-hub's greedy sampler does; otherwise tokens are sampled (--top-k, --top-p, --seed).\n"
        + "The model may also be given as the first argument.";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(ModelFlags.allowUnsafeOps());
    ModelFlags.addRuntime(o);
    o.addOption(Flags.opt("model", "DIR", "the SavedModel (or give it as the first argument)"));
    o.addOption(Flags.opt("prompt", "TEXT", "the text to continue (required)"));
    o.addOption(Flags.opt("max-new-tokens", "N", "tokens to generate at most (default: 50)"));
    o.addOption(Flags.opt("temperature", "T", "0 for greedy decoding (default), else the sampling temperature"));
    o.addOption(Flags.opt("top-k", "K", "sample among the K likeliest tokens (default: 0, no limit)"));
    o.addOption(Flags.opt("top-p", "P", "sample among the likeliest tokens covering probability P (default: 1)"));
    o.addOption(Flags.opt("seed", "S", "seeds the sampling (default: 1234)"));
    o.addOption(Option.builder().longOpt("ids").desc("also print the generated token ids").build());
    return o;
  }

  @Override
  public int run(CommandLine line, PrintWriter out, PrintWriter err) {
    List<String> args = line.getArgList();
    if (line.hasOption("model") == (args.size() == 1) || args.size() > 1) {
      throw new UsageException("give the model once: finetune generate --model DIR --prompt TEXT");
    }
    if (!line.hasOption("prompt")) {
      throw new UsageException("--prompt TEXT is required");
    }
    Path dir = Path.of(line.hasOption("model") ? line.getOptionValue("model") : args.get(0));
    int maxNew = (int) Flags.longValue(line, "max-new-tokens", 50);
    TextGenerator.Sampling sampling;
    try {
      sampling = new TextGenerator.Sampling(Flags.doubleValue(line, "temperature", 0),
          (int) Flags.longValue(line, "top-k", 0), Flags.doubleValue(line, "top-p", 1),
          Flags.longValue(line, "seed", 1234));
      if (maxNew < 0) {
        throw new IllegalArgumentException("--max-new-tokens must be >= 0, got " + maxNew);
      }
    } catch (IllegalArgumentException e) {
      throw new UsageException(Flags.message(e));
    }
    Gpt2Tokenizer tokenizer = Gpt2Tokenizer.get();
    int[] prompt = tokenizer.encode(line.getOptionValue("prompt"));
    if (prompt.length == 0) {
      throw new UsageException("the prompt is empty");
    }
    try (KerasSavedModel model = ModelFlags.open(dir, line)) {
      org.finetune.job.LanguageModelInput lm = org.finetune.job.LanguageModelInput.of(model);
      TextGenerator generator = new TextGenerator(TextGenerator.of(model), lm.positions(), Gpt2Tokenizer.END_OF_TEXT);
      Gpt2Tokenizer.Detokenizer stream = tokenizer.detokenizer();
      out.print(line.getOptionValue("prompt"));
      out.flush();
      long start = System.nanoTime();
      int[] ids = generator.generate(prompt, maxNew, sampling, id -> {
        if (id != Gpt2Tokenizer.END_OF_TEXT) {
          out.print(stream.accept(id));
          out.flush();
        }
      });
      out.println(stream.flush());
      double seconds = (System.nanoTime() - start) / 1e9;
      if (line.hasOption("ids")) {
        out.println("ids: " + java.util.Arrays.toString(ids));
      }
      err.printf(Locale.ROOT, "%d tokens in %.1f s (%.1f tokens/s)%s%n", ids.length, seconds, ids.length / seconds,
          ids.length > 0 && ids[ids.length - 1] == Gpt2Tokenizer.END_OF_TEXT ? ", stopped at <|endoftext|>" : "");
    }
    return ExitCode.OK;
  }
}
