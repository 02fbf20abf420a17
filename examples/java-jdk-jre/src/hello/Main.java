package hello;

/** A tiny Java program: compiled with javac and jar in the JDK image, run on the JRE image. */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        String name = args.length > 0 ? args[0] : "world";
        System.out.printf(
                "hello, %s! (Java %s on the JRE, user %s, built by whittle)%n",
                name, Runtime.version().feature(), System.getProperty("user.name"));
    }
}
