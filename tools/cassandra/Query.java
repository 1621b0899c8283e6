// Runs CQL statements against one node and prints the rows: the `query` command of
// tools/cassandra/cassandra. Launched with Java's single-file source launcher, with Cassandra's
// runtime jars on the classpath, which include the (shaded) DataStax Java driver 3.x, so it needs
// nothing beyond what `fetch` downloaded.
//
// Connection settings come from system properties set by the script:
//   query.host, query.port, and optionally query.user / query.password.
// Each argument is one statement; rows print as "col=value | col=value", one per line.

import com.datastax.driver.core.Cluster;
import com.datastax.driver.core.ColumnDefinitions;
import com.datastax.driver.core.ResultSet;
import com.datastax.driver.core.Row;
import com.datastax.driver.core.Session;
import com.datastax.driver.core.policies.DCAwareRoundRobinPolicy;
import com.datastax.driver.core.policies.WhiteListPolicy;
import java.net.InetSocketAddress;
import java.util.Collections;

public class Query {
    public static void main(String[] args) {
        String host = System.getProperty("query.host", "127.0.0.1");
        int port = Integer.parseInt(System.getProperty("query.port", "9042"));
        String user = System.getProperty("query.user");
        String password = System.getProperty("query.password");
        InetSocketAddress address = new InetSocketAddress(host, port);

        // Talk to the named node only, so "SELECT ... FROM system.peers" shows that node's view.
        Cluster.Builder builder = Cluster.builder()
                .addContactPointsWithPorts(address)
                .withLoadBalancingPolicy(new WhiteListPolicy(
                        DCAwareRoundRobinPolicy.builder().build(), Collections.singletonList(address)))
                .withoutJMXReporting();
        if (user != null) {
            builder.withCredentials(user, password);
        }
        int status = 0;
        try (Cluster cluster = builder.build(); Session session = cluster.connect()) {
            for (String statement : args) {
                ResultSet rows = session.execute(statement);
                ColumnDefinitions columns = rows.getColumnDefinitions();
                int count = 0;
                for (Row row : rows) {
                    StringBuilder line = new StringBuilder();
                    for (int i = 0; i < columns.size(); i++) {
                        if (i > 0) {
                            line.append(" | ");
                        }
                        line.append(columns.getName(i)).append('=').append(format(row.getObject(i)));
                    }
                    System.out.println(line);
                    count++;
                }
                if (columns.size() > 0) {
                    System.out.println("(" + count + " rows)");
                }
            }
        } catch (RuntimeException e) {
            System.err.println("query failed against " + host + ":" + port + ": " + e);
            status = 1;
        }
        System.exit(status);
    }

    // Timestamps print as ISO-8601 instants (UTC), like cqlsh, not in the JVM's locale format.
    private static Object format(Object value) {
        if (value instanceof java.util.Date) {
            return ((java.util.Date) value).toInstant();
        }
        return value;
    }
}
