// Starts DynamoDB Local listening on 127.0.0.1 only.
//
// DynamoDB Local's own main class has no host option and listens on every interface, which would
// open an unauthenticated database to the whole network. This builds the server from the same
// command-line arguments, moves its Jetty connector to the loopback address, and starts it.
// Run with Java's source-file mode: java -cp DynamoDBLocal.jar:DynamoDBLocal_lib/* this-file args…
// Telemetry stays off: the server is started without the telemetry its own main class configures.

import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class LoopbackDynamoDBLocal {
    private LoopbackDynamoDBLocal() {}

    public static void main(String[] args) throws Exception {
        String host = System.getProperty("dynamodb.local.host", "127.0.0.1");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        for (Connector connector : server.getConnectors()) {
            ((ServerConnector) connector).setHost(host);
        }
        proxy.safeStart();
        proxy.join();
    }
}
