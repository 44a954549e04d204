PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE);
INSERT INTO authors VALUES(1,'Ada Lovelace','ada.lovelace@example.org');
INSERT INTO authors VALUES(2,'Grace Hopper','grace.hopper@example.org');
INSERT INTO authors VALUES(3,'Edsger Dijkstra','edsger.dijkstra@example.org');
INSERT INTO authors VALUES(4,'Barbara Liskov','barbara.liskov@example.org');
INSERT INTO authors VALUES(5,'Ken Thompson','ken.thompson@example.org');
CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, author_id INTEGER NOT NULL REFERENCES authors(id),
      title TEXT NOT NULL, body TEXT, published_at TEXT, views INTEGER DEFAULT 0);
INSERT INTO posts VALUES(1,5,'Post 1: notes; on ''quoting'' and "semicolons"',replace('Line one\nLine two; still the body.\n-- not a comment','\n',char(10)),'2026-05-18',1659);
INSERT INTO posts VALUES(2,1,'Post 2: notes; on ''quoting'' and "semicolons"',replace('Line one\nLine two; still the body.\n-- not a comment','\n',char(10)),'2026-04-16',599);
INSERT INTO posts VALUES(3,2,'Post 3: notes; on ''quoting'' and "semicolons"',replace('Line one\nLine two; still the body.\n-- not a comment','\n',char(10)),'2026-06-12',2073);
CREATE TABLE comments (id INTEGER PRIMARY KEY, post_id INTEGER REFERENCES posts(id) ON DELETE CASCADE,
      author TEXT, body TEXT, created_at TEXT);
INSERT INTO comments VALUES(1,1,'Grace Hopper','/* not a comment */','2026-10-01');
INSERT INTO comments VALUES(2,1,'Ada Lovelace','/* not a comment */','2026-10-01');
INSERT INTO comments VALUES(3,1,'Barbara Liskov','😀 nice','2026-10-01');
INSERT INTO comments VALUES(4,2,'Edsger Dijkstra','Great post!','2026-10-01');
INSERT INTO comments VALUES(5,3,'Barbara Liskov','I disagree; here''s why…','2026-10-01');
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('posts',3);
CREATE INDEX comments_post ON comments(post_id);
CREATE VIEW post_stats AS SELECT p.id, p.title, count(c.id) AS comments FROM posts p LEFT JOIN comments c ON c.post_id = p.id GROUP BY p.id;
CREATE TRIGGER posts_touch AFTER UPDATE OF body ON posts BEGIN UPDATE posts SET views = views; END;
COMMIT;
