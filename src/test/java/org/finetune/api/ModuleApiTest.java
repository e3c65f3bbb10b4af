package org.finetune.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.lang.module.ModuleDescriptor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The compiled module exports what a user needs and keeps the flattener and the command line inside. */
class ModuleApiTest {
  @Test
  void theModuleExportsTheApiPackagesOnly() throws IOException {
    ModuleDescriptor d;
    try (InputStream in = Files.newInputStream(Fixture.projectRoot().resolve("target/classes/module-info.class"))) {
      d = ModuleDescriptor.read(in);
    }
    assertEquals("org.finetune", d.name());
    Set<String> exported = d.exports().stream().map(ModuleDescriptor.Exports::source)
        .collect(Collectors.toCollection(TreeSet::new));
    assertEquals(Set.of("org.finetune.batch", "org.finetune.data", "org.finetune.export", "org.finetune.hint",
        "org.finetune.job", "org.finetune.model", "org.finetune.savedmodel", "org.finetune.serving",
        "org.finetune.text", "org.finetune.train"), exported);
    // javac records no package list in the descriptor; the compiled classes' folders are the packages.
    Path classes = Fixture.projectRoot().resolve("target/classes");
    Set<String> inside;
    try (var files = Files.walk(classes.resolve("org/finetune"))) {
      inside = files.filter(f -> f.toString().endsWith(".class")).map(f -> classes.relativize(f.getParent()).toString()
          .replace(java.io.File.separatorChar, '.')).collect(Collectors.toCollection(TreeSet::new));
    }
    inside.removeAll(exported);
    assertEquals(Set.of("org.finetune.cli", "org.finetune.graph"), inside, "packages kept inside the module");
    assertEquals(Set.of(), d.exports().stream().filter(ModuleDescriptor.Exports::isQualified)
        .collect(Collectors.toSet()), "no qualified exports");
  }

  /**
   * A service built as a module of its own, on the module path: it fine-tunes through the job API
   * and reads the result, and the flattener's package is not visible to it.
   */
  @Test
  void aModularServiceFineTunesThroughTheJobApiAndCannotReachTheInternals(@TempDir Path tmp) throws Exception {
    Path src = tmp.resolve("src");
    Files.createDirectories(src.resolve("service"));
    Files.writeString(src.resolve("module-info.java"), "module service { requires org.finetune; }\n");
    Files.writeString(src.resolve("service/Main.java"), """
        package service;

        import java.nio.file.Path;
        import org.finetune.job.FineTuneJob;
        import org.finetune.job.FineTuneResult;
        import org.finetune.job.JobData;
        import org.finetune.model.KerasSavedModel;

        public class Main {
          public static void main(String[] args) {
            FineTuneResult r = FineTuneJob.builder(KerasSavedModel.loader(Path.of(args[0])))
                .data(JobData.images(Path.of(args[1]))).newHead().epochs(1).batchSize(4).build().run();
            System.out.println("trained " + r.history().size() + " epoch, loss " + r.lastLogs().get("loss"));
          }
        }
        """);
    String modulePath = modulePath();
    Path out = tmp.resolve("out");
    Process javac = new ProcessBuilder(javaTool("javac"), "--module-path", modulePath, "-d", out.toString(),
        src.resolve("module-info.java").toString(), src.resolve("service/Main.java").toString())
        .redirectErrorStream(true).start();
    String said = new String(javac.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    assertEquals(0, javac.waitFor(), said);

    Path data = Images.folder(tmp.resolve("data"), List.of("a", "b"), 4, 32, 5);
    Process run = new ProcessBuilder(javaTool("java"), "--module-path", out + java.io.File.pathSeparator + modulePath,
        "-m", "service/service.Main", Fixture.of("vgg16_small/keras3_export").model().toString(), data.toString())
        .redirectErrorStream(true).start();
    String ran = new String(run.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    assertEquals(0, run.waitFor(), ran);
    assertTrue(ran.lines().anyMatch(l -> l.matches("trained 1 epoch, loss [0-9.]+")), ran);

    Files.writeString(src.resolve("service/Main.java"), """
        package service;

        public class Main {
          public static void main(String[] args) {
            System.out.println(org.finetune.graph.TensorTypes.class);
          }
        }
        """);
    Process refused = new ProcessBuilder(javaTool("javac"), "--module-path", modulePath, "-d",
        tmp.resolve("out2").toString(), src.resolve("module-info.java").toString(),
        src.resolve("service/Main.java").toString()).redirectErrorStream(true).start();
    String why = new String(refused.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    assertEquals(1, refused.waitFor(), why);
    assertTrue(why.contains("package org.finetune.graph is not visible"), why);
  }

  /** The library's classes and the jars of the test's class path but the test frameworks'. */
  private static String modulePath() {
    List<String> parts = new java.util.ArrayList<>();
    parts.add(Fixture.projectRoot().resolve("target/classes").toString());
    for (String e : System.getProperty("java.class.path").split(java.io.File.pathSeparator)) {
      String p = e.replace(java.io.File.separatorChar, '/');
      if (e.endsWith(".jar") && !p.contains("/org/junit/") && !p.contains("/org/opentest4j/")
          && !p.contains("/org/apiguardian/") && !p.contains("/com/code-intelligence/")) {
        parts.add(e);
      }
    }
    return String.join(java.io.File.pathSeparator, parts);
  }

  private static String javaTool(String name) {
    return Path.of(System.getProperty("java.home"), "bin", name).toString();
  }
}
