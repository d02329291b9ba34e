package dev.reko.opensearch;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.logging.log4j.LogManager;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * Runs a real single-node OpenSearch from Maven Central jars, for local development and tests.
 *
 * <p>Why this exists: the project needs a real OpenSearch (not a mock) without downloading the
 * distribution tarball or running Docker. {@link Node} has a protected constructor that accepts
 * plugin classes found on the classpath, which is how OpenSearch's own test nodes load modules.
 * We skip {@code Bootstrap} on purpose: no security manager, no jar-hell check, no production
 * bootstrap checks (vm.max_map_count and friends), which is what a dev box wants.
 *
 * <p>Usage:
 * <pre>
 * java -Xms512m -Xmx512m -Dlog4j.shutdownHookEnabled=false \
 *   -cp 'target/launcher.jar:target/lib/*' dev.reko.opensearch.RekoNode \
 *   --http-port 9200 --home DIR [--transport-port 9300-9400] [--node-name reko-local-0]
 *   [--cluster-name reko-local] [--default-replicas 0] [--exit-with-parent PID]
 *   [--setting key=value ...]
 * </pre>
 * Data lives under {@code DIR/data}, logs under {@code DIR/logs}. The node binds 127.0.0.1 only.
 * {@code --default-replicas -1} leaves OpenSearch's own default (1 replica, health stays yellow).
 */
public final class RekoNode {

    private RekoNode() {}

    /** The modules a stock distribution would ship and that the project relies on. */
    static final List<Class<? extends Plugin>> PLUGINS = List.of(
        Netty4Plugin.class,          // HTTP + transport; required even for a single node
        CommonAnalysisPlugin.class,  // standard analyzers and token filters
        PainlessPlugin.class,        // painless scripts (script_score, update scripts)
        ReindexPlugin.class          // _delete_by_query, _update_by_query, _reindex
    );

    /**
     * OpenSearch's k-NN plugin, when its jars are on the classpath (the Maven build unpacks them
     * from Maven Central's plugin zip). Only its pure-Java {@code lucene} engine can run here: the
     * zip has no native libraries (faiss, nmslib). Maven Central's newest 2.19 build is 2.19.1.0;
     * a classpath plugin skips the descriptor's version check, and index, search and filtered
     * search with the lucene engine were verified on this 2.19.6 node (reko's faces index).
     */
    static final String KNN_PLUGIN = "org.opensearch.knn.plugin.KNNPlugin";

    @SuppressWarnings("unchecked")
    static List<Class<? extends Plugin>> plugins() {
        List<Class<? extends Plugin>> plugins = new ArrayList<>(PLUGINS);
        try {
            plugins.add((Class<? extends Plugin>) Class.forName(KNN_PLUGIN));
        } catch (ClassNotFoundException e) {
            System.out.println("reko-opensearch: k-NN plugin not on the classpath; knn_vector fields are unavailable");
        }
        return plugins;
    }

    /** Node subclass only to reach the protected constructor that takes classpath plugins. */
    static final class LocalNode extends Node {
        LocalNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            // forbidPrivateIndexSettings=true is what the production Bootstrap uses.
            super(environment, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        // Must run before anything touches log4j: our shutdown hook closes the node and wants to
        // log while doing so; log4j's own shutdown hook would otherwise stop logging first.
        System.setProperty("log4j.shutdownHookEnabled", "false");
        System.setProperty("log4j2.disable.jmx", "true");

        String httpPort = "9200";
        String transportPort = "9300-9400";
        Path home = null;
        String nodeName = "reko-local-0";
        String clusterName = "reko-local";
        int defaultReplicas = 0;
        long parentPid = -1;
        Settings.Builder extra = Settings.builder();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--http-port": httpPort = value(args, ++i, a); break;
                case "--transport-port": transportPort = value(args, ++i, a); break;
                case "--home": home = Path.of(value(args, ++i, a)); break;
                case "--node-name": nodeName = value(args, ++i, a); break;
                case "--cluster-name": clusterName = value(args, ++i, a); break;
                case "--default-replicas": defaultReplicas = Integer.parseInt(value(args, ++i, a)); break;
                case "--exit-with-parent": parentPid = Long.parseLong(value(args, ++i, a)); break;
                case "--setting": {
                    String kv = value(args, ++i, a);
                    int eq = kv.indexOf('=');
                    if (eq <= 0) usage("--setting expects key=value, got: " + kv);
                    extra.put(kv.substring(0, eq), kv.substring(eq + 1));
                    break;
                }
                case "-h":
                case "--help": usage(null); break;
                default: usage("unknown argument: " + a);
            }
        }
        if (home == null) usage("--home is required");
        home = home.toAbsolutePath().normalize();
        Path data = home.resolve("data");
        Path logs = home.resolve("logs");
        Path config = home.resolve("config");
        Files.createDirectories(data);
        Files.createDirectories(logs);
        Files.createDirectories(config);

        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", data.toString())
            .put("path.logs", logs.toString())
            .put("cluster.name", clusterName)
            .put("node.name", nodeName)
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", httpPort)
            .put("transport.port", transportPort)
            // A nearly full dev disk must not flip indices to read-only.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.auto_create_index", true)
            .put(extra.build())
            .build();

        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), config, () -> "reko-local-0");

        final Node node;
        try {
            node = new LocalNode(env, plugins());
        } catch (Throwable t) {
            // e.g. "failed to obtain node locks": another node already uses this home.
            fail("could not create node", t);
            return;
        }
        final CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                System.err.println("reko-opensearch: error while closing node: " + e);
            } finally {
                closed.countDown();
                LogManager.shutdown();
            }
        }, "reko-opensearch-shutdown"));

        if (parentPid > 0) {
            // A test runner that is SIGKILLed cannot stop us; do not outlive it as an orphan.
            ProcessHandle.of(parentPid).ifPresentOrElse(
                parent -> parent.onExit().thenRun(() -> System.exit(0)),
                () -> System.exit(0));
        }

        try {
            node.start();
            // One node can never assign replicas, so new indices default to none and health can
            // turn green. cluster.default_number_of_replicas is only honoured from the cluster
            // state (persistent cluster setting); as a node setting it is silently ignored.
            if (defaultReplicas >= 0) {
                node.client().admin().cluster().prepareUpdateSettings()
                    .setPersistentSettings(Settings.builder()
                        .put("cluster.default_number_of_replicas", defaultReplicas).build())
                    .get();
            }
        } catch (Throwable t) {
            // e.g. the HTTP port is taken. Exiting runs the shutdown hook, which closes the node;
            // without an explicit exit, non-daemon node threads would keep the JVM alive.
            fail("could not start node", t);
            return;
        }
        System.out.println("reko-opensearch: started, http://127.0.0.1:" + httpPort + " home=" + home);
        System.out.flush();
        // Keep main (a non-daemon thread) blocked; the shutdown hook releases it on SIGTERM/SIGINT.
        closed.await();
    }

    private static void fail(String what, Throwable t) {
        System.err.println("reko-opensearch: " + what + ": " + t);
        t.printStackTrace();
        System.err.flush();
        System.exit(1);
    }

    private static String value(String[] args, int i, String flag) {
        if (i >= args.length) usage(flag + " needs a value");
        return args[i];
    }

    private static void usage(String error) {
        if (error != null) System.err.println("reko-opensearch: " + error);
        System.err.println("usage: RekoNode --home DIR [--http-port 9200] [--transport-port 9300-9400]"
            + " [--node-name NAME] [--cluster-name NAME] [--default-replicas 0] [--exit-with-parent PID]"
            + " [--setting key=value ...]");
        System.exit(error == null ? 0 : 2);
    }
}
